"""Watching the estate: ``status``, ``reconcile`` and ``metrics``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from syncfabric.cli.common import (
    DEFAULT_ESTATE,
    EstateOption,
    _boundary,
    _masked,
    _runtime,
    app,
    console,
    errors,
)


@app.command()
def status(estate: EstateOption = DEFAULT_ESTATE,
           as_json: Annotated[bool, typer.Option("--json", help="Print it all as JSON.")] = False) -> None:
    """Per flow: last run, records in and out, checkpoint, dead letters, quarantined records; then recent alerts;
    then freshness, completeness and SLA verdicts per domain, throughput, and rejections by reason."""
    from syncfabric.observe.status import observe_tables, status_document

    with _boundary(), _runtime(estate) as runtime:
        if as_json:
            print(json.dumps(status_document(runtime), indent=2))
            return
        console.print(status_table(runtime))
        alerts = runtime.store.alerts(limit=10)
        if alerts:
            console.print(alerts_table(alerts))
        for table in observe_tables(runtime):
            console.print(table)


def status_table(runtime) -> Table:
    store = runtime.store
    open_counts = store.quarantine_counts()
    letters = store.dead_letter_counts()
    table = Table("flow", "direction", "system", "last run", "status", "in", "out", "checkpoint", "dead letters",
                  "quarantined", title=f"Estate {runtime.estate.name} — store {_masked(runtime.loaded.store_url)}")
    for name, flow in runtime.estate.flows.items():
        runs = store.runs(name, limit=1)
        last = runs[0] if runs else None
        checkpoint = store.checkpoint(name)
        table.add_row(
            name, flow.direction, flow.system,
            last.started_at.strftime("%Y-%m-%d %H:%M:%S") if last else "never",
            (_status_text(last.status.value) if last else "") + _fallback_text(store, name, flow.direction),
            f"{last.records_in:,}" if last else "", f"{last.records_out:,}" if last else "",
            _short(checkpoint), f"[red]{letters[name]:,}[/]" if letters.get(name) else "0",
            f"[red]{open_counts[name]:,}[/]" if open_counts.get(name) else "0",
        )
    return table


def _status_text(value: str) -> str:
    return {"succeeded": "[green]succeeded[/]", "failed": "[red]failed[/]"}.get(value, value)


def _short(checkpoint: str | None) -> str:
    if checkpoint is None:
        return "—"
    if checkpoint.isdigit():
        return f"seq {checkpoint}"
    try:
        if "cut" in (decoded := json.loads(checkpoint)):
            return f"plan-cut at seq {decoded['cut']}: {decoded['entity']} after {decoded['after']}"
        if decoded.get("snapshot_pages"):  # a full refresh a crash interrupted: where it will resume
            cursor = json.loads(decoded.get("snapshot_cursor") or "{}")
            return f"{cursor.get('file', '')}:{cursor.get('line', '')} (snapshot, {decoded['snapshot_pages']} pages)"
        text = decoded.get("cursor") or "{}"
        if not text.startswith("{"):  # a subscription: where its last committed event came from
            return text if len(text) <= 60 else "…" + text[-59:]
        cursor = json.loads(text)
        return f"{cursor.get('file', '')}:{cursor.get('line', '')}" if cursor else "—"
    except (ValueError, AttributeError):
        return checkpoint[:40]


@app.command()
def reconcile(
    domain: Annotated[str, typer.Argument(help="An estate domain (items, inventory...) or a canonical entity.")],
    samples: Annotated[int, typer.Option(help="Keys shown per kind of difference.")] = 5,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Compare source, store and target of a domain by key and content hash; exit 1 unless they all match."""
    from syncfabric.flows.reconcile import reconcile as run_reconcile

    with _boundary(), _runtime(estate) as runtime:
        with console.status("reconciling", spinner="dots") as spinner:
            result = run_reconcile(runtime, domain, progress=lambda text: spinner.update(text))
        title = f"Reconciliation of {domain} ({result.entity}), run {result.run_id}"
        sides = Table("side", "keys", "note", title=title)
        for side in result.sides:
            note = side.note or (f"{side.rejected:,} rejected by mapping or rules" if side.rejected else "")
            sides.add_row(side.name, "—" if side.hashes is None else f"{len(side.hashes):,}", note)
        console.print(sides)
        table = Table("compared", "with", "keys", "equal", "missing", "extra", "different", "samples",
                      title="Differences")
        for c in result.comparisons:
            shown = [f"{label}: {', '.join(keys[:samples])}" for label, keys in
                     (("missing", c.missing), ("extra", c.extra), ("different", c.different)) if keys]
            table.add_row(c.left, c.right, f"{c.keys:,}", f"{c.equal:,}", _bad(len(c.missing)),
                          _bad(len(c.extra)), _bad(len(c.different)), "\n".join(shown))
        console.print(table)
        if result.matches:
            console.print(f"[green]✓[/] {domain}: source, store and target match", highlight=False)
            return
        why = "nothing could be compared" if not result.comparisons else "they differ"
        errors.print(f"[bold red]✗[/] {domain}: {why}", highlight=False)
        raise typer.Exit(1)


def _bad(count: int) -> str:
    return f"[red]{count:,}[/]" if count else "0"


# -- alerts -----------------------------------------------------------------------------------------------------------


def _fallback_text(store, name: str, direction: str) -> str:
    """`` (fallback)`` for an outbound flow whose last switch was to batch catch-up."""
    if direction != "outbound":
        return ""
    for alert in store.alerts(name, limit=50):
        if alert.kind in ("fallback", "recovered"):
            return " [yellow](fallback)[/]" if alert.kind == "fallback" else ""
    return ""


def alerts_table(alerts) -> Table:
    table = Table("when", "flow", "alert", "message", title="Recent alerts")
    for alert in alerts:
        kind = {"fallback": "[yellow]fallback[/]", "recovered": "[green]recovered[/]"}.get(alert.kind, alert.kind)
        table.add_row(f"{alert.raised_at:%Y-%m-%d %H:%M:%S}", alert.flow, kind, alert.message)
    return table


metrics_app = typer.Typer(help="Prometheus metrics: freshness, completeness, throughput, rejections, latency.",
                          invoke_without_command=True)
app.add_typer(metrics_app, name="metrics")


@metrics_app.callback()
def metrics(ctx: typer.Context, estate: EstateOption = DEFAULT_ESTATE) -> None:
    """Print the metrics once in the Prometheus text format (``metrics serve`` serves them)."""
    if ctx.invoked_subcommand is not None:
        return
    from syncfabric.observe.metrics import exposition

    with _boundary(), _runtime(estate) as runtime:
        sys.stdout.write(exposition(runtime.estate, runtime.store))


def _group_estate(ctx: typer.Context, estate: Path) -> Path:
    """The estate of a ``metrics`` subcommand: its own ``--estate`` when given on its command line, else the
    group's (``metrics --estate X serve``), which the environment variable and the default fill the same way."""
    source = ctx.get_parameter_source("estate")
    if ctx.parent is None or (source is not None and source.name == "COMMANDLINE"):
        return estate
    return ctx.parent.params.get("estate", estate)


@metrics_app.command("serve")
def metrics_serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 9464,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Serve the metrics on http://127.0.0.1:PORT/metrics for Prometheus to scrape, until Ctrl-C."""
    import time

    from syncfabric.observe.metrics import serve

    estate = _group_estate(ctx, estate)
    with _boundary(), _runtime(estate) as runtime, serve(runtime.estate, runtime.store, port=port) as url:
        console.print(f"metrics on [bold]{url}/metrics[/]; Ctrl-C to stop", highlight=False)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


@metrics_app.command("prune")
def metrics_prune(
    ctx: typer.Context,
    days: Annotated[float, typer.Option(help="Keep the delivery log of this many days.")] = 7.0,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Delete delivery-log rows older than DAYS (the newest of each flow, entity and location stays)."""
    import datetime as dt

    estate = _group_estate(ctx, estate)
    with _boundary(), _runtime(estate) as runtime:
        before = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        deleted = runtime.store.prune_deliveries(before)
        console.print(f"deleted {deleted:,} delivery-log rows confirmed before {before:%Y-%m-%d %H:%M} UTC",
                      highlight=False)
