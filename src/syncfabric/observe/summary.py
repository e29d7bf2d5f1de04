"""One period of an estate, measured: what a demo prints side by side for two sync policies.

:func:`measure` gathers, for the records one outbound flow sends of one entity (the planning platform's inventory):
the data's age over the period (:func:`~syncfabric.observe.freshness.age_profile`), the delivery latency of the
records confirmed in the period (percentiles to the resolution of :mod:`syncfabric.observe.histogram`),
completeness per domain after the newest reconciliation, open quarantine and dead letters by reason, and the events
the estate's event flows (systems of kind mqtt or webhook) took in during the period. :func:`comparison_table`
shows several measurements as columns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

from rich.table import Table

from syncfabric.config.schema import Estate
from syncfabric.observe.completeness import completeness
from syncfabric.observe.freshness import AgeProfile, add_latency, age_profile
from syncfabric.observe.histogram import Histogram
from syncfabric.observe.throughput import dead_letters_by_reason, quarantine_by_reason
from syncfabric.store import Store

EVENT_KINDS = frozenset({"mqtt", "webhook"})


@dataclass(frozen=True, slots=True)
class Measurement:
    flow: str
    entity: str
    age: AgeProfile
    delivered: int
    """Records of the entity the target confirmed during the period."""
    latency_p50: float | None
    latency_p95: float | None
    latency_max: float | None
    completeness: dict[str, float | None] = field(default_factory=dict)
    """Per domain, after its newest reconciliation."""
    quarantined: dict[str, int] = field(default_factory=dict)
    """Open quarantine entries by reason (all flows)."""
    dead_letters: dict[str, int] = field(default_factory=dict)
    events: int = 0
    """Events taken in by event flows during the period."""

    def as_dict(self) -> dict[str, object]:
        shown = asdict(self)
        shown["age"] = self.age.as_dict()
        return shown


def measure(estate: Estate, store: Store, *, flow: str, entity: str, start: dt.datetime, end: dt.datetime,
            step: dt.timedelta = dt.timedelta(minutes=1)) -> Measurement:
    latencies = Histogram()
    for d in store.deliveries(since=start, until=end, flow=flow, entity=entity):
        add_latency(latencies, d)
    event_flows = {name for name, f in estate.flows.items()
                   if f.direction == "inbound" and f.system in estate.systems
                   and estate.systems[f.system].kind in EVENT_KINDS}
    events = sum(run.records_in for name in event_flows for run in store.runs(name, limit=10_000)
                 if start <= run.started_at <= end)
    quarantined: dict[str, int] = {}
    for r in quarantine_by_reason(store):
        quarantined[r.reason] = quarantined.get(r.reason, 0) + r.count
    letters: dict[str, int] = {}
    for r in dead_letters_by_reason(store):
        letters[r.reason] = letters.get(r.reason, 0) + r.count
    return Measurement(
        flow=flow, entity=entity, age=age_profile(store, flow=flow, entity=entity, start=start, end=end, step=step),
        delivered=latencies.records, latency_p50=latencies.percentile(0.5), latency_p95=latencies.percentile(0.95),
        latency_max=latencies.maximum if latencies.records else None,
        completeness={c.domain: c.completeness for c in completeness(store)},
        quarantined=quarantined, dead_letters=letters, events=events)


def comparison_table(measured: dict[str, Measurement], *, title: str = "What the product measured") -> Table:
    """One column per measurement (``{"hybrid": ..., "batch only": ...}``), one row per number."""
    from syncfabric.observe.status import age_text

    names = list(measured)
    table = Table("", *names, title=title)
    first = next(iter(measured.values()), None)
    what = f"{first.entity} at {first.flow}" if first else ""

    def row(label: str, cells: list[str]) -> None:
        table.add_row(label, *cells)

    values = list(measured.values())
    row(f"age of {what}: p50", [age_text(m.age.p50) for m in values])
    row("  p95", [age_text(m.age.p95) for m in values])
    row("  max", [age_text(m.age.max) for m in values])
    row("records delivered", [f"{m.delivered:,}" for m in values])
    row("end-to-end latency p50", [age_text(m.latency_p50) for m in values])
    row("  p95", [age_text(m.latency_p95) for m in values])
    row("  max", [age_text(m.latency_max) for m in values])
    domains = sorted({d for m in values for d in m.completeness})
    for domain in domains:
        row(f"completeness {domain}", [_share(m.completeness.get(domain)) for m in values])
    reasons = sorted({r for m in values for r in m.quarantined})
    row("quarantined", [f"{sum(m.quarantined.values()):,}" for m in values])
    for reason in reasons:
        row(f"  {reason}", [f"{m.quarantined.get(reason, 0):,}" for m in values])
    row("dead letters", [f"{sum(m.dead_letters.values()):,}" for m in values])
    for reason in sorted({r for m in values for r in m.dead_letters}):
        row(f"  {reason}", [f"{m.dead_letters.get(reason, 0):,}" for m in values])
    row("events processed", [f"{m.events:,}" for m in values])
    return table


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"
