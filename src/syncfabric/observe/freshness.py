"""Freshness per flow (target), entity (domain) and group (plant or location), from the delivery log.

- **newest source time**: the latest source time among the records the target confirmed (all time);
- **age**: ``now - newest source time`` in seconds: how old the newest fact the target holds is;
- **delivery latency** of a record: ``confirmed_at - source time`` (never below 0); p50, p95 and max over the
  records confirmed in the window ``[now - window, now]`` (None when none was): the max exact, the percentiles from
  the delivery log's histograms (:mod:`syncfabric.observe.histogram`: at most 12.2 % above the exact value);
- **change latency** (:func:`change_latencies`): from the time a fact changed at its source to the first time the
  target confirmed a record carrying it, for records whose source says when they changed (the delivery log's
  ``changed_at``). A snapshot stamps its balances with the read time, so their delivery latency is the delivery's
  alone, whether the source was read every few minutes or the next night; the change latency is what shows the
  wait, and a balance confirmed again unchanged (the next snapshot) does not count twice.

``now`` defaults to :func:`syncfabric.observe.clock.now`, so a simulation sets one clock for everything.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from syncfabric.observe import clock
from syncfabric.observe.histogram import Histogram
from syncfabric.store import DeliveryBatch, Store

WINDOW = dt.timedelta(hours=1)
"""Latency percentiles cover the records confirmed this long before ``now``."""


@dataclass(frozen=True, slots=True)
class FreshnessStat:
    flow: str
    system: str
    entity: str
    group: str
    """The location (``group_by="location_id"``), or "" for all of them together."""
    records: int
    """Records the target confirmed, all time."""
    newest_source_time: dt.datetime
    age_seconds: float
    last_confirmed_at: dt.datetime
    window_records: int
    """Records confirmed within the latency window."""
    latency_p50: float | None
    latency_p95: float | None
    latency_max: float | None

    def as_dict(self) -> dict[str, object]:
        shown = asdict(self)
        shown["newest_source_time"] = self.newest_source_time.isoformat()
        shown["last_confirmed_at"] = self.last_confirmed_at.isoformat()
        return shown


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def freshness(
    store: Store, *, flow: str | None = None, entity: str | None = None, group_by: str | None = "location_id",
    now: dt.datetime | None = None, window: dt.timedelta = WINDOW,
) -> list[FreshnessStat]:
    """Freshness and delivery latency per flow, entity and (with ``group_by="location_id"``) location."""
    if group_by not in (None, "location_id"):
        raise ValueError(f"group_by must be 'location_id' or None, got {group_by!r}")
    now = now or clock.now()
    by_group = group_by is not None
    groups: dict[tuple[str, str, str, str], list] = {}
    for g in store.delivery_groups(flow=flow, entity=entity):
        key = (g.flow, g.system, g.entity, g.group if by_group else "")
        seen = groups.get(key)
        if seen is None:
            groups[key] = [g.records, g.newest_source_time, g.last_confirmed_at]
        else:
            seen[0] += g.records
            seen[1] = max(seen[1], g.newest_source_time)
            seen[2] = max(seen[2], g.last_confirmed_at)
    latencies: dict[tuple[str, str, str, str], Histogram] = {}
    for d in store.deliveries(since=now - window, until=now, flow=flow, entity=entity):
        key = (d.flow, d.system, d.entity, d.group if by_group else "")
        add_latency(latencies.setdefault(key, Histogram()), d)
    stats = []
    for key in sorted(groups):
        records, newest, confirmed = groups[key]
        values = latencies.get(key, Histogram())
        stats.append(FreshnessStat(
            flow=key[0], system=key[1], entity=key[2], group=key[3], records=records, newest_source_time=newest,
            age_seconds=max(0.0, (now - newest).total_seconds()), last_confirmed_at=confirmed,
            window_records=values.records, latency_p50=values.percentile(0.5),
            latency_p95=values.percentile(0.95), latency_max=values.maximum if values.records else None))
    return stats


def add_latency(histogram: Histogram, batch: DeliveryBatch) -> None:
    """Add the delivery latencies of a delivery-log row."""
    histogram.add(batch.latency, batch.records, batch.latency_sum, batch.latency_max)


@dataclass(frozen=True, slots=True)
class AgeProfile:
    """How old a target's data was over a period: the age (see :func:`freshness`) sampled every ``step`` from
    ``start`` to ``end``, per group, as percentiles over all the samples."""

    flow: str
    entity: str
    start: dt.datetime
    end: dt.datetime
    step_seconds: float
    samples: int
    """(group, moment) samples at which the target held something of the group."""
    uncovered: int
    """Samples before the target held anything of the group (left out)."""
    p50: float | None
    p95: float | None
    max: float | None

    def as_dict(self) -> dict[str, object]:
        shown = asdict(self)
        shown["start"], shown["end"] = self.start.isoformat(), self.end.isoformat()
        return shown


def change_latencies(store: Store, *, flow: str, entity: str, since: dt.datetime,
                     until: dt.datetime) -> list[tuple[str, float]]:
    """(group, seconds) per change the target first confirmed between ``since`` and ``until``: first confirmation
    time - change time, for records with a known change time; the log is read from its start so that a change
    confirmed again later is not taken for a new one."""
    first: dict[tuple[str, dt.datetime], tuple[str, dt.datetime]] = {}
    for d in store.deliveries(since=dt.datetime(1970, 1, 1, tzinfo=dt.UTC), until=until, flow=flow, entity=entity):
        for changed, keys in d.changes:
            for key in keys:
                first.setdefault((key, changed), (d.group, d.confirmed_at))
    return [(group, max(0.0, (confirmed - changed).total_seconds()))
            for (_, changed), (group, confirmed) in first.items() if confirmed >= since]


def age_profile(
    store: Store, *, flow: str, entity: str, start: dt.datetime, end: dt.datetime,
    step: dt.timedelta = dt.timedelta(minutes=1), group_by: str | None = "location_id",
) -> AgeProfile:
    """At each moment ``t`` of ``start, start + step, ... end`` and for each group the target ever held by ``end``:
    the age ``t - newest source time among the records confirmed by t``. Nightly batch shows hours here where
    near-real-time delivery shows minutes."""
    if step <= dt.timedelta(0) or end < start:
        raise ValueError("age_profile needs step > 0 and end >= start")
    rows = store.deliveries(since=dt.datetime(1970, 1, 1, tzinfo=dt.UTC), until=end, flow=flow, entity=entity)
    groups = sorted({(d.group if group_by else "") for d in rows})
    newest: dict[str, dt.datetime] = {}
    ages: list[float] = []
    uncovered = 0
    index = 0
    moment = start
    while moment <= end:
        while index < len(rows) and rows[index].confirmed_at <= moment:
            d = rows[index]
            group = d.group if group_by else ""
            if group not in newest or d.newest_source_time > newest[group]:
                newest[group] = d.newest_source_time
            index += 1
        for group in groups:
            if group in newest:
                ages.append(max(0.0, (moment - newest[group]).total_seconds()))
            else:
                uncovered += 1
        moment += step
    return AgeProfile(flow=flow, entity=entity, start=start, end=end, step_seconds=step.total_seconds(),
                      samples=len(ages), uncovered=uncovered, p50=percentile(ages, 0.5), p95=percentile(ages, 0.95),
                      max=max(ages) if ages else None)
