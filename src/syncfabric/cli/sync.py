"""Moving data: ``sync`` (flows once), ``run`` (the scheduler) and ``deliver`` (continuous delivery)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from syncfabric.cli.common import (
    DEFAULT_ESTATE,
    EstateOption,
    _boundary,
    _runtime,
    app,
    console,
    errors,
)
from syncfabric.errors import ConfigError


@app.command()
def sync(
    flows: Annotated[list[str] | None, typer.Argument(help="Flows to run, in order.")] = None,
    all_flows: Annotated[bool, typer.Option("--all", help="Run every flow: inbound first, then outbound.")] = False,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Run flows once, with progress, and summarize what moved."""
    with _boundary(), _runtime(estate) as runtime:
        names = list(flows or [])
        if all_flows:
            names = sorted(runtime.estate.flows, key=lambda n: runtime.estate.flows[n].direction != "inbound")
            from syncfabric.cli.events_view import subscribable_flows

            events = subscribable_flows(runtime)
            names = [name for name in names if name not in events]
            if events and not names:
                raise ConfigError(["every flow of this estate is an event flow: run them with "
                                   "`syncfabric listen --all`"])
        if not names:
            raise ConfigError(["name at least one flow, or use --all"])
        results = [run_with_progress(runtime, name) for name in names]
        console.print(results_table(results))
        for r in results:
            if r.dead_lettered:
                errors.print(f"{r.flow}: {r.dead_lettered:,} changes dead-lettered; see `syncfabric deadletter list "
                             f"--flow {r.flow}`", highlight=False)


def run_with_progress(runtime, name: str):
    columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
               TextColumn("{task.completed:,} records"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(name, total=None)
        return runtime.run_flow(name, progress=lambda n: progress.advance(task, n))


def results_table(results) -> Table:
    table = Table("flow", "direction", "read", "inserted", "updated", "deleted", "unchanged", "sent",
                  "quarantined", title="What moved")
    for r in results:
        table.add_row(r.flow, r.direction, f"{r.records_in:,}", f"{r.inserted:,}", f"{r.updated:,}",
                      f"{r.deleted:,}", f"{r.unchanged:,}", f"{r.records_out:,}",
                      f"[red]{r.quarantined:,}[/]" if r.quarantined else "0")
    return table


@app.command("run")
def run_scheduler(
    flows: Annotated[list[str] | None, typer.Option("--flow", "-f", help="Only these flows (repeatable).")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).")]
    = None,
    max_runs: Annotated[int | None, typer.Option(help="Stop after this many runs.")] = None,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Run the scheduler in the foreground: each flow on its cron schedule, never two runs of one flow at once."""
    import datetime as dt

    from syncfabric.flows.scheduler import Scheduler, jobs_of

    with _boundary(), _runtime(estate) as runtime:
        jobs = [job for job in jobs_of(runtime.estate) if not flows or job.flow in flows]
        unknown = sorted(set(flows or ()) - set(runtime.estate.flows))
        if unknown:
            raise ConfigError([f"unknown flow(s) {', '.join(unknown)}"])
        if not jobs:
            raise ConfigError(["no scheduled flows: give a flow (or its domain) a schedule: CRON"])

        def event(job, what: str, detail) -> None:
            stamp = dt.datetime.now(dt.UTC).strftime("%H:%M:%S")
            if what == "finished":
                console.print(results_table([detail]))
            elif what == "failed":
                errors.print(f"{stamp} [bold red]{job.flow} failed:[/] {detail}", highlight=False)
            elif what == "skipped":
                console.print(f"{stamp} [yellow]{job.flow} skipped[/]: {detail}", highlight=False)
            else:
                console.print(f"{stamp} {job.flow} started (due {detail:%H:%M:%S})", highlight=False)

        scheduler = Scheduler(runtime, jobs=jobs, run=lambda name: run_with_progress(runtime, name), on_event=event)
        scheduler.start()
        table = Table("flow", "schedule", "missed runs", "next run (UTC)", title="Schedule")
        for job in jobs:
            table.add_row(job.flow, job.cron, job.missed, f"{job.next_due:%Y-%m-%d %H:%M:%S}")
        console.print(table)
        until = None if duration is None else dt.datetime.now(dt.UTC) + dt.timedelta(seconds=duration)
        try:
            scheduler.run(until=until, max_runs=max_runs)
        except KeyboardInterrupt:
            console.print("stopped")
        console.print(f"{scheduler.runs} run(s)", highlight=False)


# -- continuous delivery ----------------------------------------------------------------------------------------------


@app.command()
def deliver(
    flows: Annotated[list[str], typer.Argument(help="Outbound flows (mode changes) to deliver continuously.")],
    until_idle: Annotated[bool, typer.Option(
        "--until-idle", help="Stop once every flow is caught up, instead of following the change log.")] = False,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Deliver changes to outbound flows' targets as they are recorded, with live counts; Ctrl-C (or SIGTERM)
    stops: each consumer ends its session, a second Ctrl-C stops waiting for them."""
    import signal
    import threading

    from rich.live import Live

    from syncfabric.flows.deliverers import Deliverers

    with _boundary(), _runtime(estate) as runtime:
        deliverers = Deliverers(runtime, flows, until_idle=until_idle)

        def stop(*_: object) -> None:  # the consumers end at their next wait; a second Ctrl-C interrupts ours
            deliverers.stop()
            signal.signal(signal.SIGINT, signal.default_int_handler)

        handled = (signal.SIGINT, signal.SIGTERM) if threading.current_thread() is threading.main_thread() else ()
        previous = {number: signal.signal(number, stop) for number in handled}  # (only the main thread may)
        try:
            deliverers.start()
            consumers = deliverers.consumers
            with Live(delivery_table(consumers), console=console, refresh_per_second=4,
                      auto_refresh=console.is_terminal, transient=False) as live:
                try:
                    while not deliverers.wait(0.25):
                        live.update(delivery_table(consumers))
                    deliverers.join()
                except KeyboardInterrupt:
                    deliverers.join(timeout=5)
                live.update(delivery_table(consumers), refresh=True)
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
        if deliverers.errors:
            raise deliverers.errors[0]


def delivery_table(consumers) -> Table:
    table = Table("flow", "mode", "changes", "delivered", "batches", "retries", "failed", "dead-lettered",
                  "checkpoint", "lag", "last error", title="Continuous delivery")
    for consumer in consumers:
        s = consumer.stats
        table.add_row(s.flow, s.mode if s.mode == "streaming" else f"[yellow]{s.mode}[/]", f"{s.changes:,}",
                      f"{s.delivered:,}", f"{s.batches:,}", f"{s.retries:,}",
                      f"[red]{s.failures:,}[/]" if s.failures else "0",
                      f"[red]{s.dead_lettered:,}[/]" if s.dead_lettered else "0", f"seq {s.checkpoint}",
                      f"{s.lag_seconds:.1f} s", s.last_error[:60])
    return table
