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
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from syncfabric.model import ENTITIES
from syncfabric.observe import clock
from syncfabric.observe.histogram import Histogram
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


def _first_time(payload: Mapping[str, Any] | None, names: Sequence[str],
                parsed: dict[str, dt.datetime | None]) -> dt.datetime | None:
    """The first of ``names`` in ``payload`` that holds a time; ``parsed``: the texts parsed so far (None: not
    a time)."""
    if payload:
        for name in names:
            value = payload.get(name)
            if isinstance(value, str):
                known = parsed.get(value, _UNSEEN)
                if known is _UNSEEN:
                    known = parsed[value] = _parse(value)
                if known is not None:
                    return known  # type: ignore[return-value]
            elif isinstance(value, dt.datetime):
                return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None


_UNSEEN = object()


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

    The source and change time follow the module's definitions: the first of the entity's fields (:func:`fields_of`)
    that holds a time. The fields are looked up once per run of records of one entity (a batch is mostly one), a
    time text is parsed once per batch (the records of a batch often share their times, and an event's source and
    change time are the same field), and a latency is worked out once per source time."""
    at = confirmed_at or clock.now()
    parsed: dict[str, dt.datetime | None] = {}
    batches: dict[tuple[str, str], _Batch] = {}
    current: str | None = None
    times: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    same = plain = False
    for entity, pending in confirmed:
        if entity != current:
            current = entity
            times, changes, groups = fields_of(entity)
            same = changes == times  # an event's change time is its source time (the same fields): found once
            plain = not (times or changes or groups)
        if plain:  # an entity without such fields: the time the store recorded the change, no group, no change time
            when, changed, group = pending.recorded_at or at, None, ""
        else:
            payload = pending.record.payload
            stated = _first_time(payload, times, parsed) if times else None
            when = stated or pending.recorded_at or at
            changed = stated if same else _first_time(payload, changes, parsed)
            group = group_of(payload, groups) if groups else ""
        batch = batches.get((entity, group))
        if batch is None:
            batch = batches[(entity, group)] = _Batch()
        batch.add(pending.record.key, pending.seq, when, changed)
    return [batch.row(flow, system, entity, group, at) for (entity, group), batch in batches.items()]


def summarize(flow: str, system: str, entity: str, group: str, confirmed_at: dt.datetime,
              records: Iterable[tuple[str, int, dt.datetime, dt.datetime | None]]) -> DeliveryBatch:
    """The delivery-log row of records ``(key, seq, source time, change time)`` of one entity and group that a target
    confirmed at ``confirmed_at`` (what :func:`deliveries` makes of a batch, from times already known)."""
    batch = _Batch()
    for key, seq, when, changed in records:
        batch.add(key, seq, when, changed)
    if not batch.seqs:
        raise ValueError(f"no records to summarize for {flow}/{entity}/{group!r}")
    return batch.row(flow, system, entity, group, confirmed_at)


class _Batch:
    """The records of one entity and group of a confirmed batch, as they come: summed up by :meth:`row` (a batch
    shares many source times, whose latency is worked out once)."""

    __slots__ = ("changes", "seqs", "times")

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.times: list[dt.datetime] = []
        self.changes: dict[dt.datetime, list[str]] = {}

    def add(self, key: str, seq: int, when: dt.datetime, changed: dt.datetime | None) -> None:
        self.seqs.append(seq)
        self.times.append(when)
        if changed is not None:
            keys = self.changes.get(changed)
            if keys is None:
                keys = self.changes[changed] = []
            keys.append(key)

    def row(self, flow: str, system: str, entity: str, group: str, at: dt.datetime) -> DeliveryBatch:
        latencies = Histogram()
        for when, n in Counter(self.times).items():
            latencies.add_value((at - when).total_seconds(), n)
        changes = self.changes
        return DeliveryBatch(flow, system, entity, group, len(self.seqs), min(self.seqs), max(self.seqs),
                             max(self.times), at, latencies.stored(), latencies.total, latencies.maximum,
                             max(changes) if changes else None,
                             tuple((changed, tuple(keys)) for changed, keys in changes.items()))
