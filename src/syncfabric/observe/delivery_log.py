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
import itertools
import operator
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


def _times(payloads: Sequence[Mapping[str, Any] | None], names: Sequence[str],
           parsed: dict[str, dt.datetime | None]) -> list[dt.datetime | None]:
    """Per payload, the first of ``names`` that holds a time (None: none does), read a field at a time over all of
    them, the next field only where those before held no time. ``parsed``: the texts parsed so far (None: not a
    time); each new text is parsed once, however many records hold it."""
    found: list[dt.datetime | None] = []
    for name in names:
        if not found:
            values = [payload.get(name) if payload else None for payload in payloads]
        elif None in found:
            values = [None if known is not None or not payload else payload.get(name)
                      for known, payload in zip(found, payloads, strict=True)]
        else:
            break  # every record has its time
        for text in {value for value in values if value.__class__ is str}:
            if text not in parsed:
                parsed[text] = _parse(text)
        times = [parsed[value] if value.__class__ is str else None if value is None else _time_of(value, parsed)
                 for value in values]
        found = [known or time for known, time in zip(found, times, strict=True)] if found else times
    return found


def _time_of(value: object, parsed: dict[str, dt.datetime | None]) -> dt.datetime | None:
    """The time a field's value holds where it is not a plain text or None: a datetime (UTC when it names no zone),
    a text of a subclass of str; nothing else."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str):
        known = parsed.get(value, _UNSEEN)
        if known is _UNSEEN:
            known = parsed[value] = _parse(value)
        return known  # type: ignore[return-value]
    return None


_UNSEEN = object()


def _parse(text: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def group_of(payload: Mapping[str, Any] | None, names: Sequence[str] = GROUP_FIELDS) -> str:
    """The group of one record: the first of ``names`` that holds a non-empty text, "" when none does."""
    return _groups([payload], names)[0]


def _groups(payloads: Sequence[Mapping[str, Any] | None], names: Sequence[str]) -> list[str]:
    """:func:`group_of` of each payload, a field at a time over all of them."""
    found: list[str] = [""] * len(payloads)
    for name in names:
        values = [payload.get(name) if payload else None for payload in payloads]
        if values.count(None) != len(values):  # a field none of them has (an event at no location of ours) is skipped
            found = [label or (value if isinstance(value, str) else "")
                     for label, value in zip(found, values, strict=True)]
    return found


def deliveries(flow: str, system: str, confirmed: Iterable[tuple[str, Any]],
               confirmed_at: dt.datetime | None = None) -> list[DeliveryBatch]:
    """Delivery-log rows for the records a target just confirmed (``(entity, Pending)`` pairs): one per entity and
    group, in the order each first appears.

    The source and change time follow the module's definitions: the first of the entity's fields (:func:`fields_of`)
    that holds a time. A run of records of one entity (a batch is mostly one) is worked out a column at a time, in
    comprehensions rather than a call or two per record: the fields looked up once per run, each field read from
    every payload in one pass, a time text parsed once per batch (the records of a batch often share their times,
    and an event's source and change time are the same field, read once), the run split by group only when it has
    more than one; a latency is worked out once per source time (:meth:`_Batch.row`)."""
    at = confirmed_at or clock.now()
    parsed: dict[str, dt.datetime | None] = {}
    batches: dict[tuple[str, str], _Batch] = {}
    for entity, run in itertools.groupby(confirmed, key=_first):
        pending = [item for _, item in run]
        times, changes, groups = fields_of(entity)
        payloads = [item.record.payload for item in pending] if times or changes or groups else []
        stated = _times(payloads, times, parsed) if times else None
        if stated is not None and None not in stated:  # every record says when
            when = stated
        elif stated is None:  # no source time field: the time the store recorded the change
            when = [item.recorded_at or at for item in pending]
        else:
            when = [time or item.recorded_at or at for time, item in zip(stated, pending, strict=True)]
        # an event's change time is its source time (the same fields): found once
        changed = (stated if changes == times else _times(payloads, changes, parsed)) if changes else None
        keys = [item.record.key for item in pending]
        seqs = [item.seq for item in pending]
        labels = _groups(payloads, groups) if groups else None
        if labels is None or labels.count(labels[0]) == len(labels):  # one group, the usual run
            group = labels[0] if labels else ""
            _batch(batches, entity, group).extend(keys, seqs, when, changed)
            continue
        split: dict[str, list[int]] = {}
        for index, label in enumerate(labels):
            if (members := split.get(label)) is None:
                members = split[label] = []
            members.append(index)
        for group, members in split.items():
            _batch(batches, entity, group).extend(
                [keys[i] for i in members], [seqs[i] for i in members], [when[i] for i in members],
                None if changed is None else [changed[i] for i in members])
    return [batch.row(flow, system, entity, group, at) for (entity, group), batch in batches.items()]


_first = operator.itemgetter(0)


def _batch(batches: dict[tuple[str, str], _Batch], entity: str, group: str) -> _Batch:
    batch = batches.get((entity, group))
    if batch is None:
        batch = batches[(entity, group)] = _Batch()
    return batch


def summarize(flow: str, system: str, entity: str, group: str, confirmed_at: dt.datetime,
              records: Iterable[tuple[str, int, dt.datetime, dt.datetime | None]]) -> DeliveryBatch:
    """The delivery-log row of records ``(key, seq, source time, change time)`` of one entity and group that a target
    confirmed at ``confirmed_at`` (what :func:`deliveries` makes of a batch, from times already known)."""
    columns = list(zip(*records, strict=True))
    if not columns:
        raise ValueError(f"no records to summarize for {flow}/{entity}/{group!r}")
    keys, seqs, when, changed = (list(column) for column in columns)
    batch = _Batch()
    batch.extend(keys, seqs, when, changed)
    return batch.row(flow, system, entity, group, confirmed_at)


class _Batch:
    """The records of one entity and group of a confirmed batch, as columns: summed up by :meth:`row` (a batch
    shares many source times, whose latency is worked out once)."""

    __slots__ = ("changed", "keys", "seqs", "times")

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.times: list[dt.datetime] = []
        self.keys: list[str] = []
        self.changed: list[dt.datetime | None] = []
        """The change time of each of ``keys`` (None: the record has none); only runs with change time fields."""

    def extend(self, keys: list[str], seqs: list[int], times: list[dt.datetime],
               changed: list[dt.datetime | None] | None) -> None:
        """Records, a column each; ``changed`` None: none of them has a change time (their entity no such field)."""
        self.seqs += seqs
        self.times += times
        if changed is not None:
            self.keys += keys
            self.changed += changed

    def row(self, flow: str, system: str, entity: str, group: str, at: dt.datetime) -> DeliveryBatch:
        latencies = Histogram()
        counts = Counter(self.times)
        for when, n in counts.items():
            latencies.add_value((at - when).total_seconds(), n)
        changes = self._changes()
        return DeliveryBatch(flow, system, entity, group, len(self.seqs), min(self.seqs), max(self.seqs),
                             max(counts), at, latencies.stored(), latencies.total, latencies.maximum,
                             max(changed for changed, _ in changes) if changes else None, changes)

    def _changes(self) -> tuple[tuple[dt.datetime, tuple[str, ...]], ...]:
        """The keys by change time, each time in the order it first appears; the records without one left out."""
        changed, keys = self.changed, self.keys
        distinct = dict.fromkeys(changed)
        distinct.pop(None, None)
        if len(distinct) == len(changed):  # every record its own time (or none at all)
            return tuple((time, (key,)) for time, key in zip(changed, keys, strict=True))  # type: ignore[misc]
        if len(distinct) == 1 and None not in changed:  # one time for the lot: an event batch's usual answer
            return ((changed[0], tuple(keys)),)  # type: ignore[arg-type]
        by_time: dict[dt.datetime, list[str]] = {time: [] for time in distinct}
        for time, key in zip(changed, keys, strict=True):
            if time is not None:
                by_time[time].append(key)
        return tuple((time, tuple(members)) for time, members in by_time.items())
