"""What outbound delivery writes to the delivery log: per confirmed record, its source time and its group.

**Source time** of a delivered record: the first of the canonical record's own time fields that it has
(:data:`SOURCE_TIME_FIELDS`: ``as_of`` of a balance, ``occurred_at`` of an event, ``completed_at`` of a
completion...); else the time the store recorded the change, that is when the inbound flow read it.
**Change time**: when the fact changed at its source, where the record says: a balance's ``changed_at``, or an
event's own time (every source time field but ``as_of``, which a snapshot stamps with its read time); None
otherwise. Latency is measured from it, freshness from the source time.
**Group**: the plant or location the record concerns (:data:`GROUP_FIELDS`), "" when it names none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from syncfabric.observe import clock
from syncfabric.store import NewDelivery

SOURCE_TIME_FIELDS = ("as_of", "occurred_at", "completed_at", "posted_at", "confirmed_at", "shipped_at")
CHANGE_TIME_FIELDS = ("changed_at", *SOURCE_TIME_FIELDS[1:])
GROUP_FIELDS = ("location_id", "to_location_id")


def source_time(payload: Mapping[str, Any] | None, recorded_at: dt.datetime | None) -> dt.datetime | None:
    """When the fact a record states happened at its source (see the module's definition)."""
    return _first_time(payload, SOURCE_TIME_FIELDS) or recorded_at


def change_time(payload: Mapping[str, Any] | None) -> dt.datetime | None:
    """When the fact a record states changed at its source, where it says (see the module's definition)."""
    return _first_time(payload, CHANGE_TIME_FIELDS)


def _first_time(payload: Mapping[str, Any] | None, fields: tuple[str, ...]) -> dt.datetime | None:
    if payload:
        for name in fields:
            value = payload.get(name)
            if isinstance(value, str):
                try:
                    parsed = dt.datetime.fromisoformat(value)
                except ValueError:
                    continue
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
            if isinstance(value, dt.datetime):
                return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None


def group_of(payload: Mapping[str, Any] | None) -> str:
    if payload:
        for name in GROUP_FIELDS:
            value = payload.get(name)
            if isinstance(value, str) and value:
                return value
    return ""


def deliveries(flow: str, system: str, confirmed: Iterable[tuple[str, Any]],
               confirmed_at: dt.datetime | None = None) -> list[NewDelivery]:
    """Delivery-log rows for the records a target just confirmed: ``(entity, Pending)`` pairs."""
    at = confirmed_at or clock.now()
    rows = []
    for entity, pending in confirmed:
        payload = pending.record.payload
        when = source_time(payload, pending.recorded_at) or at
        rows.append(NewDelivery(flow=flow, system=system, entity=entity, record_key=pending.record.key,
                                group=group_of(payload), seq=pending.seq, source_time=when, confirmed_at=at,
                                changed_at=change_time(payload)))
    return rows
