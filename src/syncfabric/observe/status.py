"""What ``syncfabric status`` shows below the flows table: freshness, completeness and SLA verdicts, throughput,
quarantine and dead letters by reason; and the same as JSON for machines (``status --json``)."""

from __future__ import annotations

import datetime as dt
import math

from rich.table import Table

from syncfabric.observe import clock
from syncfabric.observe.sla import (
    MET,
    MISSED,
    DomainCompleteness,
    DomainFreshness,
    domain_completeness,
    domain_freshness,
)
from syncfabric.observe.throughput import dead_letters_by_reason, quarantine_by_reason, throughput


def age_text(seconds: float | None) -> str:
    """``42s``, ``7m 05s``, ``3h 12m``, ``2d 4h``; an em dash for nothing."""
    if seconds is None:
        return "—"
    seconds = round(float(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def verdict_text(verdict: str | None, limit: str = "") -> str:
    """``✓ ≤ 30 min`` in green when met, ``✗`` in red when missed, ``?`` in yellow with no data; ``—`` without SLA."""
    if verdict is None:
        return "[dim]—[/]"
    mark = {MET: "[green]✓", MISSED: "[red]✗"}.get(verdict, "[yellow]?")
    return f"{mark} {limit}[/]".replace(" [/]", "[/]")


def sla_table(fresh: list[DomainFreshness], complete: list[DomainCompleteness]) -> Table:
    table = Table("domain", "target flow", "delivered", "age", "oldest", "latency p50", "p95", "max", "SLA",
                  "completeness", "SLA", title="Freshness and completeness (✓ met, ✗ missed, ? no data)")
    by_domain = {c.domain: c for c in complete}
    shown: set[str] = set()
    for f in fresh:
        c = by_domain.get(f.domain)
        table.add_row(
            f.domain, f.flow, f"{f.records:,}", age_text(f.age_seconds), f.oldest_group or "—",
            age_text(f.latency_p50), age_text(f.latency_p95), age_text(f.latency_max),
            verdict_text(f.verdict, f"≤ {f.sla_minutes:g} min" if f.sla_minutes is not None else ""),
            *(_completeness_cells(c) if c and f.domain not in shown else ("", "")))
        shown.add(f.domain)
    for c in complete:
        if c.domain not in shown and (c.stat is not None or c.sla is not None):
            table.add_row(c.domain, "—", "", "", "", "", "", "", "", *_completeness_cells(c))
    return table


def _completeness_cells(c: DomainCompleteness) -> tuple[str, str]:
    stat = c.stat
    value = "—" if stat is None or stat.completeness is None else \
        f"{percent_down(stat.completeness)} ({stat.equal:,}/{stat.keys:,})"
    return value, verdict_text(c.verdict, f"≥ {c.sla:.0%}" if c.sla is not None else "")


def percent_down(share: float) -> str:
    """A share as a percentage with one decimal, rounded down: 9,942 of 9,943 reads 99.9%, never 100.0%, which
    would say complete next to a missed SLA."""
    return f"{math.floor(round(share * 1000, 6)) / 10:.1f}%"


def throughput_table(rows) -> Table:
    table = Table("flow", "runs", "failed", "in", "out", "quarantined", "in/s", "out/s", "last run out/s",
                  title="Throughput (recent runs)")
    for r in rows:
        if not r.runs:
            continue
        table.add_row(r.flow, str(r.runs), f"[red]{r.failed}[/]" if r.failed else "0", f"{r.records_in:,}",
                      f"{r.records_out:,}", f"{r.quarantined:,}", _rate(r.in_per_second), _rate(r.out_per_second),
                      _rate(r.last_out_per_second))
    return table


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def reasons_table(title: str, rows) -> Table:
    table = Table("flow", "reason", "open", title=title)
    for r in rows:
        table.add_row(r.flow, r.reason, f"[red]{r.count:,}[/]")
    return table


def observe_tables(runtime, *, now: dt.datetime | None = None) -> list[Table]:
    """The tables ``syncfabric status`` prints below the flows table (those with something to show)."""
    now = now or clock.now()
    estate, store = runtime.estate, runtime.store
    fresh = domain_freshness(estate, store, now=now)
    complete = domain_completeness(estate, store)
    tables = []
    if fresh or any(c.stat or c.sla is not None for c in complete):
        tables.append(sla_table(fresh, complete))
    rates = throughput(store, list(estate.flows))
    if any(r.runs for r in rates):
        tables.append(throughput_table(rates))
    quarantined = quarantine_by_reason(store)
    if quarantined:
        tables.append(reasons_table("Quarantined by reason", quarantined))
    letters = dead_letters_by_reason(store)
    if letters:
        tables.append(reasons_table("Dead letters by reason", letters))
    return tables


def status_document(runtime, *, now: dt.datetime | None = None) -> dict[str, object]:
    """Everything ``status`` shows, as JSON-ready data."""
    now = now or clock.now()
    estate, store = runtime.estate, runtime.store
    letters = store.dead_letter_counts()
    quarantine = store.quarantine_counts()
    flows = []
    for name, flow in estate.flows.items():
        runs = store.runs(name, limit=1)
        last = runs[0] if runs else None
        flows.append({"flow": name, "direction": flow.direction, "system": flow.system,
                      "last_run": last.started_at.isoformat() if last else None,
                      "status": last.status.value if last else None,
                      "records_in": last.records_in if last else None,
                      "records_out": last.records_out if last else None,
                      "checkpoint": store.checkpoint(name), "dead_letters": letters.get(name, 0),
                      "quarantined": quarantine.get(name, 0)})
    fresh = domain_freshness(estate, store, now=now)
    complete = domain_completeness(estate, store)
    verdicts = [v for v in [*(f.verdict for f in fresh), *(c.verdict for c in complete)] if v is not None]
    return {
        "estate": estate.name, "now": now.isoformat(), "flows": flows,
        "freshness": [f.as_dict() for f in fresh], "completeness": [c.as_dict() for c in complete],
        "sla_met": all(v == MET for v in verdicts) if verdicts else None,
        "throughput": [r.as_dict() for r in throughput(store, list(estate.flows))],
        "quarantined_by_reason": [{"flow": r.flow, "reason": r.reason, "count": r.count}
                                  for r in quarantine_by_reason(store)],
        "dead_letters_by_reason": [{"flow": r.flow, "reason": r.reason, "count": r.count}
                                   for r in dead_letters_by_reason(store)],
    }
