"""What every HTTP-based connector reads the same way from a response."""

from __future__ import annotations

import datetime as dt
import email.utils

import httpx


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from ``Retry-After`` (delay in seconds or an HTTP date), None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
