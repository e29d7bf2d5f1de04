"""HTTP failures as TransientError or PermanentError: one classification for every connector that speaks HTTP.

    httpx.TimeoutException, httpx.NetworkError,   ─► TransientError  (retry; ``retry_after`` from the header)
    httpx.RemoteProtocolError,
    408, 425, 429, 5xx (except 501, 505)
    401, 403, other 4xx, 501, 505, other httpx   ─► PermanentError  (credentials, request or configuration wrong)

Each connector package's ``exceptions.py`` calls :func:`translate_http_error` with the name of its system.
"""

from __future__ import annotations

import datetime as dt
import email.utils

import httpx

from syncfabric.errors import ConnectorError, PermanentError, TransientError

_RETRYABLE_STATUS = frozenset({408, 425, 429})
_FINAL_SERVER_STATUS = frozenset({501, 505})


def translate_http_error(
    problem: httpx.HTTPError | httpx.Response, *, what: str, system: str, entity: str = "", key: str = ""
) -> ConnectorError:
    """The error to raise for a failed request (``problem`` is the httpx error) or an unsuccessful response;
    ``what`` names the other side in the message ("planning platform", "REST API")."""
    if isinstance(problem, httpx.Response):
        status = problem.status_code
        message = f"{what} answered {status} {problem.reason_phrase}: {_detail(problem)}"
        if status in _RETRYABLE_STATUS or (status >= 500 and status not in _FINAL_SERVER_STATUS):
            return TransientError(message, retry_after=retry_after(problem), system=system, entity=entity, key=key)
        return PermanentError(message, system=system, entity=entity, key=key)
    if isinstance(problem, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        message = f"{what} unreachable: {type(problem).__name__}: {problem}"
        return TransientError(message, system=system, entity=entity, key=key)
    message = f"request to {what} failed: {type(problem).__name__}: {problem}"
    return PermanentError(message, system=system, entity=entity, key=key)


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


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or "(no body)"
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return str(detail)[:300]
