"""Prometheus metrics, read from the store at each scrape (nothing is kept in memory between scrapes).

Every metric is named ``syncfabric_*``; see docs/observe.md for the list. :func:`registry` builds a registry for
one estate, :func:`exposition` renders it once (``syncfabric metrics``), :func:`serve` serves it over HTTP on
127.0.0.1 (``syncfabric metrics serve``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from syncfabric.config.schema import Estate
from syncfabric.observe import clock
from syncfabric.observe.freshness import add_latency, freshness
from syncfabric.observe.histogram import LATENCY_BUCKETS, Histogram
from syncfabric.observe.sla import MET, domain_completeness, domain_freshness
from syncfabric.observe.throughput import dead_letters_by_reason, quarantine_by_reason
from syncfabric.store import Store

RUN_HISTORY = 10_000
"""Runs per flow summed into the records in/out counters."""
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class StoreCollector(Collector):
    """Collects the estate's metrics from its store at each scrape."""

    def __init__(self, estate: Estate, store: Store, now: Callable[[], dt.datetime] | None = None) -> None:
        self.estate = estate
        self.store = store
        self.now = now or clock.now

    def collect(self) -> Iterator[Metric]:
        now = self.now()
        yield from self._freshness(now)
        yield from self._sla(now)
        yield from self._runs()
        yield from self._rejections()
        yield self._latency(now)

    def _freshness(self, now: dt.datetime) -> Iterator[Metric]:
        age = GaugeMetricFamily("syncfabric_freshness_age_seconds",
                                "Age of the newest change a target holds: now minus its source time.",
                                labels=["flow", "system", "entity", "location"])
        delivered = CounterMetricFamily("syncfabric_records_delivered",
                                        "Records a target confirmed (the delivery log).",
                                        labels=["flow", "system", "entity", "location"])
        for stat in freshness(self.store, group_by="location_id", now=now):
            labels = [stat.flow, stat.system, stat.entity, stat.group]
            age.add_metric(labels, stat.age_seconds)
            delivered.add_metric(labels, stat.records)
        yield age
        yield delivered

    def _sla(self, now: dt.datetime) -> Iterator[Metric]:
        ratio = GaugeMetricFamily("syncfabric_completeness_ratio",
                                  "Share of keys present and equal at the weakest target after the newest "
                                  "reconciliation (0..1).", labels=["domain", "entity"])
        sla = GaugeMetricFamily("syncfabric_sla_met", "1 when the domain's SLA check is met, 0 when missed or "
                                "nothing was measured yet.", labels=["domain", "check", "flow"])
        for c in domain_completeness(self.estate, self.store):
            if c.stat is not None and c.stat.completeness is not None:
                ratio.add_metric([c.domain, c.entity], c.stat.completeness)
            if c.verdict is not None:
                sla.add_metric([c.domain, "completeness", ""], 1.0 if c.verdict == MET else 0.0)
        for f in domain_freshness(self.estate, self.store, now=now):
            if f.verdict is not None:
                sla.add_metric([f.domain, "freshness", f.flow], 1.0 if f.verdict == MET else 0.0)
        yield ratio
        yield sla

    def _runs(self) -> Iterator[Metric]:
        records_in = CounterMetricFamily("syncfabric_flow_records_in", "Records flows read, over the run history.",
                                         labels=["flow"])
        records_out = CounterMetricFamily("syncfabric_flow_records_out",
                                          "Records flows wrote or sent, over the run history.", labels=["flow"])
        runs = CounterMetricFamily("syncfabric_flow_runs", "Finished runs, by status.", labels=["flow", "status"])
        for name in self.estate.flows:
            history = [r for r in self.store.runs(name, limit=RUN_HISTORY) if r.finished_at is not None]
            records_in.add_metric([name], sum(r.records_in for r in history))
            records_out.add_metric([name], sum(r.records_out for r in history))
            for status in ("succeeded", "failed"):
                runs.add_metric([name, status], sum(r.status.value == status for r in history))
        yield records_in
        yield records_out
        yield runs

    def _rejections(self) -> Iterator[Metric]:
        quarantined = GaugeMetricFamily("syncfabric_quarantined", "Open quarantine entries, by flow and reason.",
                                        labels=["flow", "reason"])
        for r in quarantine_by_reason(self.store):
            quarantined.add_metric([r.flow, r.reason], r.count)
        letters = GaugeMetricFamily("syncfabric_dead_letters", "Open dead letters, by flow and reason.",
                                    labels=["flow", "reason"])
        for r in dead_letters_by_reason(self.store):
            letters.add_metric([r.flow, r.reason], r.count)
        yield quarantined
        yield letters

    def _latency(self, now: dt.datetime) -> Metric:
        histogram = HistogramMetricFamily("syncfabric_delivery_latency_seconds",
                                          "Delivery latency of each confirmed record: confirmed minus source time.",
                                          labels=["flow"])
        per_flow: dict[str, Histogram] = {}
        for d in self.store.deliveries(since=_EPOCH, until=now):
            add_latency(per_flow.setdefault(d.flow, Histogram()), d)
        for flow, values in sorted(per_flow.items()):
            buckets = [(str(bound), float(values.at_most(bound))) for bound in LATENCY_BUCKETS]
            buckets.append(("+Inf", float(values.records)))
            histogram.add_metric([flow], buckets, sum_value=values.total)
        return histogram


def registry(estate: Estate, store: Store, now: Callable[[], dt.datetime] | None = None) -> CollectorRegistry:
    found = CollectorRegistry(auto_describe=False)
    found.register(StoreCollector(estate, store, now))
    return found


def exposition(estate: Estate, store: Store) -> str:
    """The metrics once, in the Prometheus text format."""
    return generate_latest(registry(estate, store)).decode("utf-8")


@contextmanager
def serve(estate: Estate, store: Store, *, port: int = 9464, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``/metrics`` on ``host:port`` (port 0: a free one) while the block runs; yields the base URL."""
    server, thread = start_http_server(port, addr=host, registry=registry(estate, store))
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
