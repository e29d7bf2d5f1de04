"""Watermarks and key positions that connectors keep in their cursors.

A cursor is text (JSON) that outlives the process, yet a key column or a watermark may be a number, a date-time or
a text. Values are stored tagged with their type (``["dt", "2026-05-01T08:00:00+00:00"]``) so that a resumed read
binds them back as what they were, and the overlap window for late commits can be subtracted from them.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

Tagged = list[Any]


def tag(value: Any) -> Tagged:
    """``value`` as a JSON-friendly ``[type, value]`` pair."""
    if value is None:
        return ["null", None]
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        return ["int", value]
    if isinstance(value, float):
        return ["float", value]
    if isinstance(value, Decimal):
        return ["dec", str(value)]
    if isinstance(value, dt.datetime):
        return ["dt", value.isoformat()]
    if isinstance(value, dt.date):
        return ["date", value.isoformat()]
    if isinstance(value, dt.time):
        return ["time", value.isoformat()]
    if isinstance(value, bytes):
        return ["hex", value.hex()]
    return ["str", str(value)]


def untag(tagged: Tagged) -> Any:
    kind, value = tagged
    decode = {
        "null": lambda v: None, "bool": bool, "int": int, "float": float, "dec": Decimal,
        "dt": dt.datetime.fromisoformat, "date": dt.date.fromisoformat, "time": dt.time.fromisoformat,
        "hex": bytes.fromhex, "str": str,
    }
    return decode[kind](value)


def step_back(value: Any, overlap: float) -> Any:
    """The watermark ``overlap`` earlier: seconds for date-times (and ISO date-time text), days rounded up for
    dates, units for numbers. Other values (opaque text) cannot move back and are returned as they are."""
    if not overlap or value is None:
        return value
    if isinstance(value, dt.datetime):
        return value - dt.timedelta(seconds=overlap)
    if isinstance(value, dt.date):
        return value - dt.timedelta(days=math.ceil(overlap / 86_400))
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value - math.ceil(overlap)
    if isinstance(value, float):
        return value - overlap
    if isinstance(value, Decimal):
        return value - Decimal(str(overlap))
    if isinstance(value, str) and (moment := parse_datetime(value)) is not None:
        # Written as the source writes its stamps (separator, fractions, Z), since text compares as text.
        fraction = len(value) > 19 and value[19] in ".,"
        earlier = (moment - dt.timedelta(seconds=overlap)).isoformat(
            sep=value[10], timespec="microseconds" if fraction else "seconds")
        return earlier.replace("+00:00", "Z") if value.endswith("Z") else earlier
    return value


def later(current: Any, candidate: Any) -> Any:
    """The later of two watermarks (None is earliest); ISO date-time text is compared as instants."""
    if candidate is None:
        return current
    if current is None:
        return candidate
    a, b = _comparable(current), _comparable(candidate)
    try:
        return candidate if b > a else current
    except TypeError:
        return candidate if str(candidate) > str(current) else current


def parse_datetime(text: str) -> dt.datetime | None:
    """An ISO 8601 date-time (``2026-05-01T08:00:00Z``), or None when the text is not one."""
    if len(text) < 16 or text[4:5] != "-":
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _comparable(value: Any) -> Any:
    if isinstance(value, str) and (moment := parse_datetime(value)) is not None:
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value
