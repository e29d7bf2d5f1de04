"""SLA checks: each estate domain's ``sla`` (freshness_minutes, completeness) against what was measured.

Per domain and per outbound flow that sends the domain's entity:

- **freshness**: the oldest per-location age (see :mod:`syncfabric.observe.freshness`) must be at most
  ``freshness_minutes``; the location that is oldest is named. A target that confirmed nothing yet has no data;
- **completeness**: the domain's completeness after its newest reconciliation
  (:mod:`syncfabric.observe.completeness`) must be at least ``completeness``.

A verdict is ``met``, ``missed`` or ``no data`` (nothing measured yet: not met). A domain without that SLA target
gets no check of it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from syncfabric.config.schema import Estate
from syncfabric.observe import clock
from syncfabric.observe.completeness import CompletenessStat, completeness
from syncfabric.observe.freshness import FreshnessStat, freshness
from syncfabric.store import Store

MET, MISSED, NO_DATA = "met", "missed", "no data"


@dataclass(frozen=True, slots=True)
class DomainFreshness:
    """One domain at one target: its freshness over every location, and the oldest location."""

    domain: str
    entity: str
    flow: str
    system: str
    records: int
    age_seconds: float | None
    """The oldest location's age; None when the target confirmed nothing yet."""
    oldest_group: str
    latency_p50: float | None
    latency_p95: float | None
    latency_max: float | None
    sla_minutes: float | None
    verdict: str | None
    """met, missed, no data; None without a freshness SLA."""
    groups: list[FreshnessStat]

    def as_dict(self) -> dict[str, object]:
        shown = asdict(self)
        shown["groups"] = [g.as_dict() for g in self.groups]
        return shown


@dataclass(frozen=True, slots=True)
class DomainCompleteness:
    domain: str
    entity: str
    stat: CompletenessStat | None
    sla: float | None
    verdict: str | None

    def as_dict(self) -> dict[str, object]:
        return {"domain": self.domain, "entity": self.entity, "sla": self.sla, "verdict": self.verdict,
                **(self.stat.as_dict() if self.stat else {"completeness": None})}


def domain_freshness(estate: Estate, store: Store, *, now: dt.datetime | None = None) -> list[DomainFreshness]:
    now = now or clock.now()
    found = []
    for name, domain in estate.domains.items():
        for flow_name, flow in estate.flows.items():
            if flow.direction != "outbound" or domain.entity not in flow.entities:
                continue
            groups = freshness(store, flow=flow_name, entity=domain.entity, group_by="location_id", now=now)
            overall = freshness(store, flow=flow_name, entity=domain.entity, group_by=None, now=now)
            total = overall[0] if overall else None
            oldest = max(groups, key=lambda g: g.age_seconds, default=None)
            limit = domain.sla.freshness_minutes
            verdict = None
            if limit is not None:
                verdict = NO_DATA if oldest is None else MET if oldest.age_seconds <= limit * 60 else MISSED
            found.append(DomainFreshness(
                domain=name, entity=domain.entity, flow=flow_name, system=flow.system,
                records=total.records if total else 0, age_seconds=oldest.age_seconds if oldest else None,
                oldest_group=oldest.group if oldest else "",
                latency_p50=total.latency_p50 if total else None, latency_p95=total.latency_p95 if total else None,
                latency_max=total.latency_max if total else None, sla_minutes=limit, verdict=verdict,
                groups=groups))
    return found


def domain_completeness(estate: Estate, store: Store) -> list[DomainCompleteness]:
    stats = {stat.domain: stat for stat in completeness(store)}
    found = []
    for name, domain in estate.domains.items():
        stat = stats.get(name) or stats.get(domain.entity)
        target = domain.sla.completeness
        verdict = None
        if target is not None:
            verdict = NO_DATA if stat is None or stat.completeness is None \
                else MET if stat.completeness >= target else MISSED
        found.append(DomainCompleteness(name, domain.entity, stat, target, verdict))
    return found
