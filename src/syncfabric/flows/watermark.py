"""Watermarks taken from the data: the highest value of a source field (``last_modified_at``, a change counter)
among the records an inbound net-change flow committed.

The next run asks the connector for records changed since that value minus an overlap window, so that a change
committed late at the source (its timestamp older than the newest one already read) is still picked up. The records
read again because of the overlap are absorbed by their content hash: they write nothing.

Values are compared by kind: numbers as numbers, ISO-8601 timestamps as instants (a timestamp without an offset is
taken as UTC), anything else as text (no overlap can be subtracted from text).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from syncfabric.connectors.base import RawRecord

Comparable = tuple[int, Any]
"""(kind, value): kind 0 numbers, 1 timestamps, 2 text, so that values of one kind compare among themselves."""


def comparable(value: Any) -> Comparable | None:
    """A source field's value as something to compare, or None when it holds no value."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return 0, int(value)
    if isinstance(value, int | float | Decimal):
        return 0, Decimal(str(value))
    if isinstance(value, dt.datetime):
        return 1, value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    text = str(value).strip()
    try:
        return 0, Decimal(text)
    except InvalidOperation:
        pass
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return 2, text
    return 1, stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def highest(records: Iterable[RawRecord], field: str, current: str | None) -> str | None:
    """The highest watermark of ``records`` and ``current``, as the text it was given in (``current`` if none)."""
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
    """What to ask the connector for: the watermark moved back by the overlap, in the watermark's own form."""
    found = comparable(watermark)
    if found is None or not overlap_seconds:
        return watermark
    kind, value = found
    if kind == 0:
        return str(value - Decimal(str(overlap_seconds)))
    if kind == 1:
        return (value - dt.timedelta(seconds=overlap_seconds)).isoformat()
    return watermark
