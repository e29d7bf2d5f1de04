"""Freshness per flow (target), entity (domain) and group (plant or location), from the delivery log.

- **newest source time**: the latest source time among the records the target confirmed (all time);
- **age**: ``now - newest source time`` in seconds: how old the newest fact the target holds is;
- **delivery latency** of a record: ``confirmed_at - source time`` (never below 0); p50, p95 and max over the
  records confirmed in the window ``[now - window, now]`` (None when none was).

``now`` defaults to :func:`syncfabric.observe.clock.now`, so a simulation sets one clock for everything.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from syncfabric.observe import clock
from syncfabric.store import Store

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
    latencies: dict[tuple[str, str, str, str], list[float]] = {}
    for d in store.deliveries(since=now - window, until=now, flow=flow, entity=entity):
        key = (d.flow, d.system, d.entity, d.group if by_group else "")
        latencies.setdefault(key, []).append(max(0.0, (d.confirmed_at - d.source_time).total_seconds()))
    stats = []
    for key in sorted(groups):
        records, newest, confirmed = groups[key]
        values = latencies.get(key, [])
        stats.append(FreshnessStat(
            flow=key[0], system=key[1], entity=key[2], group=key[3], records=records, newest_source_time=newest,
            age_seconds=max(0.0, (now - newest).total_seconds()), last_confirmed_at=confirmed,
            window_records=len(values), latency_p50=percentile(values, 0.5), latency_p95=percentile(values, 0.95),
            latency_max=max(values) if values else None))
    return stats


def latencies(store: Store, *, flow: str | None = None, now: dt.datetime | None = None,
              window: dt.timedelta = WINDOW) -> dict[str, list[float]]:
    """Delivery latencies in seconds per flow over the window: what the metrics histogram counts."""
    now = now or clock.now()
    found: dict[str, list[float]] = {}
    for d in store.deliveries(since=now - window, until=now, flow=flow):
        found.setdefault(d.flow, []).append(max(0.0, (d.confirmed_at - d.source_time).total_seconds()))
    return found
