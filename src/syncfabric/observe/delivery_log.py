"""What outbound delivery writes to the delivery log: per batch a target confirmed, one row per entity and group
(:class:`~syncfabric.store.DeliveryBatch`), summing up each record's source time, change time and latency.

**Source time** of a delivered record: the first of the canonical record's own time fields that it has
(:data:`SOURCE_TIME_FIELDS`: ``as_of`` of a balance, ``occurred_at`` of an event, ``completed_at`` of a
completion...); else the time the store recorded the change, that is when the inbound flow read it.
**Change time**: when the fact changed at its source, where the record says: a balance's ``changed_at``, or an
event's own time (every source time field but ``as_of``, which a snapshot stamps with its read time); None
otherwise. Latency is measured from it, freshness from the source time.
**Group**: the plant or location the record concerns (:data:`GROUP_FIELDS`), "" when it names none.
**Delivery latency** of a record: confirmation time - source time (at least 0), kept as counts per bucket
(:mod:`syncfabric.observe.histogram`) with the exact sum and maximum.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from syncfabric.model import ENTITIES
from syncfabric.observe import clock
from syncfabric.observe.histogram import bucket
from syncfabric.store import DeliveryBatch

SOURCE_TIME_FIELDS = ("as_of", "occurred_at", "completed_at", "posted_at", "confirmed_at", "shipped_at")
CHANGE_TIME_FIELDS = ("changed_at", *SOURCE_TIME_FIELDS[1:])
GROUP_FIELDS = ("location_id", "to_location_id")


@functools.cache
def fields_of(entity: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The source-time, change-time and group fields a record of ``entity`` can have, in the order they are tried:
    those of its canonical model (a payload holds only its model's fields), all of them for an entity the model does
    not know."""
    cls = ENTITIES.get(entity)
    if cls is None:
        return SOURCE_TIME_FIELDS, CHANGE_TIME_FIELDS, GROUP_FIELDS
    own = set(cls.__struct_fields__)
    return (tuple(name for name in SOURCE_TIME_FIELDS if name in own),
            tuple(name for name in CHANGE_TIME_FIELDS if name in own),
            tuple(name for name in GROUP_FIELDS if name in own))


def source_time(payload: Mapping[str, Any] | None, recorded_at: dt.datetime | None,
                names: Sequence[str] = SOURCE_TIME_FIELDS,
                parsed: dict[str, dt.datetime | None] | None = None) -> dt.datetime | None:
    """When the fact a record states happened at its source (see the module's definition); ``names``: the fields
    to try (:func:`fields_of`); ``parsed``: time texts already parsed (see :func:`_first_time`)."""
    return _first_time(payload, names, parsed) or recorded_at


def change_time(payload: Mapping[str, Any] | None, names: Sequence[str] = CHANGE_TIME_FIELDS,
                parsed: dict[str, dt.datetime | None] | None = None) -> dt.datetime | None:
    """When the fact a record states changed at its source, where it says (see the module's definition)."""
    return _first_time(payload, names, parsed)


def _first_time(payload: Mapping[str, Any] | None, names: Sequence[str],
                parsed: dict[str, dt.datetime | None] | None = None) -> dt.datetime | None:
    """The first of ``names`` in ``payload`` that holds a time; ``parsed``: the texts parsed so far (None: not
    a time)."""
    if payload and names:
        for name in names:
            value = payload.get(name)
            if isinstance(value, str):
                if parsed is not None and value in parsed:
                    known = parsed[value]
                else:
                    known = _parse(value)
                    if parsed is not None:
                        parsed[value] = known
                if known is not None:
                    return known
            elif isinstance(value, dt.datetime):
                return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None


def _parse(text: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def group_of(payload: Mapping[str, Any] | None, names: Sequence[str] = GROUP_FIELDS) -> str:
    if payload and names:
        for name in names:
            value = payload.get(name)
            if isinstance(value, str) and value:
                return value
    return ""


def deliveries(flow: str, system: str, confirmed: Iterable[tuple[str, Any]],
               confirmed_at: dt.datetime | None = None) -> list[DeliveryBatch]:
    """Delivery-log rows for the records a target just confirmed (``(entity, Pending)`` pairs): one per entity and
    group, in the order each first appears.

    A time text is parsed once per batch (the records of a batch often share their times, and an event's source
    and change time are the same field), and a latency is worked out once per source time."""
    at = confirmed_at or clock.now()
    parsed: dict[str, dt.datetime | None] = {}
    latencies: dict[dt.datetime, tuple[float, int]] = {}
    batches: dict[tuple[str, str], _Batch] = {}
    for entity, pending in confirmed:
        record = pending.record
        times, changes, groups = fields_of(entity)
        if times or changes or groups:
            payload = record.payload
            when = source_time(payload, pending.recorded_at, times, parsed) or at
            changed = change_time(payload, changes, parsed)
            group = group_of(payload, groups)
        else:  # an entity without such fields: the time the store recorded the change, no group, no change time
            when, changed, group = pending.recorded_at or at, None, ""
        latency = latencies.get(when)
        if latency is None:
            seconds = max(0.0, (at - when).total_seconds())
            latency = latencies[when] = (seconds, bucket(seconds))
        batch = batches.get((entity, group))
        if batch is None:
            batch = batches[(entity, group)] = _Batch(pending.seq, when)
        batch.add(record.key, pending.seq, when, changed, latency)
    return [batch.row(flow, system, entity, group, at) for (entity, group), batch in batches.items()]


def summarize(flow: str, system: str, entity: str, group: str, confirmed_at: dt.datetime,
              records: Iterable[tuple[str, int, dt.datetime, dt.datetime | None]]) -> DeliveryBatch:
    """The delivery-log row of records ``(key, seq, source time, change time)`` of one entity and group that a target
    confirmed at ``confirmed_at`` (what :func:`deliveries` makes of a batch, from times already known)."""
    batch: _Batch | None = None
    for key, seq, when, changed in records:
        if batch is None:
            batch = _Batch(seq, when)
        seconds = max(0.0, (confirmed_at - when).total_seconds())
        batch.add(key, seq, when, changed, (seconds, bucket(seconds)))
    if batch is None:
        raise ValueError(f"no records to summarize for {flow}/{entity}/{group!r}")
    return batch.row(flow, system, entity, group, confirmed_at)


class _Batch:
    """The records of one entity and group of a confirmed batch, summed up as they come."""

    __slots__ = ("changed", "changes", "counts", "first", "last", "maximum", "newest", "records", "total")

    def __init__(self, seq: int, when: dt.datetime) -> None:
        self.records = 0
        self.first = self.last = seq
        self.newest = when
        self.changed: dt.datetime | None = None
        self.changes: list[tuple[str, dt.datetime]] = []
        self.counts: dict[int, int] = {}
        self.total = self.maximum = 0.0

    def add(self, key: str, seq: int, when: dt.datetime, changed: dt.datetime | None,
            latency: tuple[float, int]) -> None:
        self.records += 1
        if seq < self.first:
            self.first = seq
        elif seq > self.last:
            self.last = seq
        if when > self.newest:
            self.newest = when
        if changed is not None:
            self.changes.append((key, changed))
            if self.changed is None or changed > self.changed:
                self.changed = changed
        seconds, b = latency
        self.counts[b] = self.counts.get(b, 0) + 1
        self.total += seconds
        if seconds > self.maximum:
            self.maximum = seconds

    def row(self, flow: str, system: str, entity: str, group: str, at: dt.datetime) -> DeliveryBatch:
        return DeliveryBatch(flow, system, entity, group, self.records, self.first, self.last, self.newest, at,
                             tuple(sorted(self.counts.items())), self.total, self.maximum, self.changed,
                             tuple(self.changes))
