"""What outbound delivery writes to the delivery log: per confirmed record, its source time and its group.

**Source time** of a delivered record: the first of the canonical record's own time fields that it has
(:data:`SOURCE_TIME_FIELDS`: ``as_of`` of a balance, ``occurred_at`` of an event, ``completed_at`` of a
completion...); else the time the store recorded the change, that is when the inbound flow read it.
**Group**: the plant or location the record concerns (:data:`GROUP_FIELDS`), "" when it names none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from syncfabric.observe import clock
from syncfabric.store import NewDelivery

SOURCE_TIME_FIELDS = ("as_of", "occurred_at", "completed_at", "posted_at", "confirmed_at", "shipped_at")
GROUP_FIELDS = ("location_id", "to_location_id")


def source_time(payload: Mapping[str, Any] | None, recorded_at: dt.datetime | None) -> dt.datetime | None:
    """When the fact a record states happened at its source (see the module's definition)."""
    if payload:
        for name in SOURCE_TIME_FIELDS:
            value = payload.get(name)
            if isinstance(value, str):
                try:
                    parsed = dt.datetime.fromisoformat(value)
                except ValueError:
                    continue
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
            if isinstance(value, dt.datetime):
                return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return recorded_at


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
                                group=group_of(payload), seq=pending.seq, source_time=when, confirmed_at=at))
    return rows
