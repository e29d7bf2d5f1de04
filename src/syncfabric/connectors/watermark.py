"""Watermarks: how far a net-change read got, as a value of the data (``last_modified_at``, a change counter).

Two users, one set of rules. Connectors keep typed watermarks and key positions in their cursors: a cursor is text
(JSON) that outlives the process, yet a key column or a watermark may be a number, a date-time or a text, so
values are stored tagged with their type (``["dt", "2026-05-01T08:00:00+00:00"]``) and bound back as what they
were. An inbound net-change flow keeps the highest value of a source field among the records it committed
(:func:`highest`), as text, and asks the connector for records changed since that value minus an overlap window
(:func:`since`), so that a change committed late at the source (its timestamp older than the newest one already
read) is still picked up; the records read again are absorbed by their content hash.

Values compare by kind (:func:`comparable`): numbers (and numeric text) as numbers, date-times (and ISO 8601
date-time text; without an offset taken as UTC) as instants, anything else as text. The overlap moves a value back
in its own form (:func:`step_back`): seconds for date-times, days rounded up for dates, units for numbers; text that
is neither cannot move back.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from syncfabric.connectors.base import RawRecord

Tagged = list[Any]
Comparable = tuple[int, Any]
"""(kind, value): kind 0 numbers, 1 date-times, 2 text, so that values of one kind compare among themselves."""


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
    dates, units for numbers (and numeric text). Other values (opaque text) cannot move back and are returned as
    they are."""
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
    if isinstance(value, str) and (number := _number(value)) is not None:
        return str(number - Decimal(str(overlap)))
    return value


def later(current: Any, candidate: Any) -> Any:
    """The later of two watermarks (None, or one without a value, is earliest), compared by :func:`comparable`."""
    a, b = comparable(current), comparable(candidate)
    if b is None:
        return current
    if a is None:
        return candidate
    return candidate if b > a else current


def comparable(value: Any) -> Comparable | None:
    """A watermark as something to compare, or None when it holds no value (None, empty text)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return 0, int(value)
    if isinstance(value, int | float | Decimal):
        return 0, Decimal(str(value))
    if isinstance(value, dt.datetime):
        return 1, value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    text = str(value).strip()
    if (number := _number(text)) is not None:
        return 0, number
    if (moment := parse_datetime(text)) is not None:
        return 1, moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return 2, text


def highest(records: Iterable[RawRecord], field: str, current: str | None) -> str | None:
    """The highest watermark of ``records`` and ``current``, as the text it was given in (``current`` if none);
    values of another kind than ``current`` are passed over."""
    best_text, best = current, comparable(current)
    for record in records:
        value = record.data.get(field)
        found = comparable(value)
        if found is None:
            continue
        if best is None or (found[0] == best[0] and found[1] > best[1]):
            best_text, best = (value.isoformat() if isinstance(value, dt.datetime) else str(value)), found
    return best_text


def since(watermark: str | None, overlap_seconds: float) -> str | None:
    """What an inbound flow asks the connector for: its watermark moved back by the overlap (:func:`step_back`),
    in the watermark's own form."""
    if not watermark or not overlap_seconds:
        return watermark
    return step_back(watermark, overlap_seconds)


def parse_datetime(text: str) -> dt.datetime | None:
    """An ISO 8601 date-time (``2026-05-01T08:00:00Z``), or None when the text is not one."""
    if len(text) < 16 or text[4:5] != "-":
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _number(text: str) -> Decimal | None:
    """Numeric text as a number (``"10"`` is later than ``"9"``), or None."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
