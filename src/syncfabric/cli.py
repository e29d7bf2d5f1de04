"""The ``syncfabric`` command line. Errors are translated here once: a ConfigError lists every problem and exits 2,
any other SyncfabricError prints its message and exits 1."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from syncfabric.errors import ConfigError, SyncfabricError

app = typer.Typer(help="syncfabric: keep the planning platform fed with fresh, complete, trusted data.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
model_app = typer.Typer(help="The canonical manufacturing model.", no_args_is_help=True)
estate_app = typer.Typer(help="The estate file.", no_args_is_help=True)
quarantine_app = typer.Typer(help="Records rejected with their reasons.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(estate_app, name="estate")
app.add_typer(quarantine_app, name="quarantine")

console = Console()
errors = Console(stderr=True)
for _console in (console, errors):
    if not _console.is_terminal:  # logs and pipes: wide enough that tables stay readable
        _console.width = max(_console.width, 140)

EstateOption = Annotated[Path, typer.Option("--estate", "-e", envvar="SYNCFABRIC_ESTATE",
                                            help="The estate file.", show_default=True)]
DEFAULT_ESTATE = Path("estate.yaml")


@contextmanager
def _boundary() -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        errors.print(f"[bold red]invalid configuration[/] {exc.source}".rstrip())
        for problem in exc.problems:
            errors.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except SyncfabricError as exc:
        errors.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


def _runtime(estate: Path):
    from syncfabric.config import load_estate
    from syncfabric.flows.runtime import Runtime

    return Runtime(load_estate(estate))


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="Estate file to check.")] = DEFAULT_ESTATE) -> None:
    """Check an estate file; report every problem with file, line and JSON path."""
    from syncfabric.config import validate_estate_file

    problems = validate_estate_file(file)
    if problems:
        errors.print(f"[bold red]{len(problems)} problem(s)[/] in {file}")
        for problem in problems:
            errors.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2)
    console.print(f"[green]✓[/] {file} is valid")


@model_app.command("list")
def model_list() -> None:
    """List the canonical entities, in dependency order."""
    from syncfabric.model.schema import describe

    table = Table("entity", "domain", "key", "fields", "what it is", title="Canonical entities")
    for row in describe():
        table.add_row(row.entity, row.domain, ", ".join(row.key_fields), str(row.field_count), row.summary)
    console.print(table)


@model_app.command("schema")
def model_schema(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for one <entity>.schema.json per entity.")] = Path(
        "schemas/model"),
) -> None:
    """Write a JSON Schema per canonical entity."""
    from syncfabric.model.schema import write_schemas

    written = write_schemas(out)
    console.print(f"wrote {len(written)} schemas to {out}")


@estate_app.command("schema")
def estate_schema() -> None:
    """Print the estate file's JSON Schema (for editors)."""
    from syncfabric.config import estate_json_schema

    sys.stdout.write(json.dumps(estate_json_schema(), indent=2) + "\n")


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
        if not names:
            raise ConfigError(["name at least one flow, or use --all"])
        results = [run_with_progress(runtime, name) for name in names]
        console.print(results_table(results))


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


@app.command()
def status(estate: EstateOption = DEFAULT_ESTATE) -> None:
    """Per flow: last run, records in and out, checkpoint, quarantined records."""
    with _boundary(), _runtime(estate) as runtime:
        console.print(status_table(runtime))


def status_table(runtime) -> Table:
    store = runtime.store
    open_counts = store.quarantine_counts()
    table = Table("flow", "direction", "system", "last run", "status", "in", "out", "checkpoint", "quarantined",
                  title=f"Estate {runtime.estate.name} — store {_masked(runtime.loaded.store_url)}")
    for name, flow in runtime.estate.flows.items():
        runs = store.runs(name, limit=1)
        last = runs[0] if runs else None
        checkpoint = store.checkpoint(name)
        table.add_row(
            name, flow.direction, flow.system,
            last.started_at.strftime("%Y-%m-%d %H:%M:%S") if last else "never",
            _status_text(last.status.value) if last else "",
            f"{last.records_in:,}" if last else "", f"{last.records_out:,}" if last else "",
            _short(checkpoint), f"[red]{open_counts[name]:,}[/]" if open_counts.get(name) else "0",
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
        cursor = json.loads(json.loads(checkpoint).get("cursor") or "{}")
        return f"{cursor.get('file', '')}:{cursor.get('line', '')}" if cursor else "—"
    except (ValueError, AttributeError):
        return checkpoint[:40]


def _masked(url: str) -> str:
    from syncfabric.config._secrets import mask_url

    return mask_url(url)


@quarantine_app.command("list")
def quarantine_list(
    flow: Annotated[str | None, typer.Option(help="Only this flow.")] = None,
    system: Annotated[str | None, typer.Option(help="Only this system.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only reasons containing this text.")] = None,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """List open quarantine entries with where they came from and why."""
    with _boundary(), _runtime(estate) as runtime:
        entries = runtime.store.quarantine(flow=flow, system=system, reason=reason)
        table = Table("id", "flow", "system", "where", "key", "reasons", title=f"{len(entries)} quarantined")
        for entry in entries:
            table.add_row(str(entry.id), entry.flow, entry.system, entry.location, entry.record_key,
                          "\n".join(entry.reasons))
        console.print(table)


IdsArgument = Annotated[list[int] | None, typer.Argument(help="Quarantine entry ids.", show_default=False)]


def _actor() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _selected(runtime, ids: list[int] | None, flow: str | None, system: str | None, reason: str | None,
              every: bool) -> list:
    """The open entries named by ids and/or filters; refuses an empty selection unless ``--all`` says so."""
    if not (ids or flow or system or reason or every):
        raise ConfigError(["name entry ids, filter with --flow/--system/--reason, or use --all"])
    from syncfabric.store import QuarantineStatus

    entries = runtime.store.quarantine(status=None if ids else QuarantineStatus.OPEN, flow=flow, system=system,
                                       reason=reason, ids=ids or None)
    if ids:
        missing = sorted(set(ids) - {entry.id for entry in entries})
        if missing:
            raise SyncfabricError(f"no quarantine entry {', '.join(map(str, missing))} (with these filters)")
    return entries


@quarantine_app.command("show")
def quarantine_show(
    entry_id: Annotated[int, typer.Argument(metavar="ID", help="The quarantine entry.")],
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Show one quarantined record: where it came from, why it was rejected, its raw payload and its history."""
    with _boundary(), _runtime(estate) as runtime:
        found = runtime.store.quarantine(status=None, ids=[entry_id])
        if not found:
            raise SyncfabricError(f"no quarantine entry {entry_id}")
        entry = found[0]
        console.print(f"[bold]quarantine entry {entry.id}[/] — {entry.status.value}", highlight=False)
        for label, value in (("flow", entry.flow), ("system", entry.system), ("entity", entry.entity),
                             ("key", entry.record_key), ("where", entry.location),
                             ("created", f"{entry.created_at:%Y-%m-%d %H:%M:%S}"),
                             ("updated", f"{entry.updated_at:%Y-%m-%d %H:%M:%S}")):
            console.print(f"  {label:8} {value}", highlight=False, markup=False)
        console.print("[bold]reasons[/]")
        for reason in entry.reasons:
            console.print(f"  {reason}", highlight=False, markup=False, soft_wrap=True)
        console.print("[bold]raw payload[/]")
        try:
            payload = json.dumps(json.loads(entry.payload), indent=2, ensure_ascii=False)
        except ValueError:
            payload = entry.payload
        console.print(payload, highlight=False, markup=False, soft_wrap=True)
        history = Table("when", "step", "by", "detail", title="history")
        for event in runtime.store.quarantine_events(entry.id):
            history.add_row(f"{event.recorded_at:%Y-%m-%d %H:%M:%S}", event.action.value, event.actor, event.detail)
        console.print(history)


@quarantine_app.command("edit")
def quarantine_edit(
    entry_id: Annotated[int, typer.Argument(metavar="ID", help="The quarantine entry.")],
    assignments: Annotated[list[str], typer.Option(
        "--set", metavar="FIELD=VALUE", help="Set a field of the raw payload (repeatable; a.b for nested).")],
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Fix a quarantined record's raw payload; replay it afterwards with `quarantine replay ID`."""
    from syncfabric.flows.replay import edit_entry

    with _boundary(), _runtime(estate) as runtime:
        changes: dict[str, str] = {}
        for assignment in assignments:
            name, equals, value = assignment.partition("=")
            if not equals or not name.strip():
                raise ConfigError([f"expected FIELD=VALUE, got {assignment!r}"])
            changes[name.strip()] = value
        entry = edit_entry(runtime.store, entry_id, changes, actor=_actor())
        console.print(f"edited quarantine entry {entry.id}: {', '.join(changes)}", highlight=False)


@quarantine_app.command("replay")
def quarantine_replay(
    ids: IdsArgument = None,
    flow: Annotated[str | None, typer.Option(help="Only this flow.")] = None,
    system: Annotated[str | None, typer.Option(help="Only this system.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only reasons containing this text.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every open entry.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Replay even over a newer version of the same key accepted since.")] = False,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Replay quarantined records through their flow's current mapping and rules; deliver those that now pass."""
    from syncfabric.flows.replay import replay_entries

    with _boundary(), _runtime(estate) as runtime:
        entries = _selected(runtime, ids, flow, system, reason, every)
        result = replay_entries(runtime.store, runtime.estate, entries, actor=_actor(), force=force)
        console.print(f"replayed {len(result.replayed)}, failed again {len(result.failed)}, "
                      f"skipped {len(result.skipped)} (inserted {result.inserted}, updated {result.updated}, "
                      f"unchanged {result.unchanged}, warnings {result.warned})", highlight=False)
        for entry_id, reasons in result.failed.items():
            for text in reasons:
                errors.print(f"  {entry_id}: {text}", highlight=False, markup=False, soft_wrap=True)
        for entry_id, why in result.skipped.items():
            errors.print(f"  {entry_id}: skipped, {why}", highlight=False, markup=False, soft_wrap=True)
        if result.failed or result.skipped:
            raise typer.Exit(1)


@quarantine_app.command("discard")
def quarantine_discard(
    ids: IdsArgument = None,
    flow: Annotated[str | None, typer.Option(help="Only this flow.")] = None,
    system: Annotated[str | None, typer.Option(help="Only this system.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only reasons containing this text.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every open entry.")] = False,
    note: Annotated[str, typer.Option(help="Why, kept in the entries' history.")] = "",
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Close quarantined records without delivering them; `quarantine show ID` keeps showing them and their history."""
    from syncfabric.flows.replay import discard_entries

    with _boundary(), _runtime(estate) as runtime:
        entries = _selected(runtime, ids, flow, system, reason, every)
        discarded = discard_entries(runtime.store, entries, note=note, actor=_actor())
        console.print(f"discarded {len(discarded)} of {len(entries)}", highlight=False)


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Seed of the simulated data.")] = 7,
    items: Annotated[int, typer.Option(help="Items in the simulated legacy ERP.")] = 200,
    keep: Annotated[Path | None, typer.Option(help="Build the demo estate in this folder and keep it.")] = None,
) -> None:
    """Build the sandbox estate in a temporary folder, run the walking skeleton, and show what moved."""
    from syncfabric.sandbox.demo import run_demo

    with _boundary():
        run_demo(console, seed=seed, items=items, folder=keep)


# -- bus: change-log fan-out ----------------------------------------------------------------------------------------

bus_app = typer.Typer(help="The change-log bus: relay to NATS JetStream, consumer lag.", no_args_is_help=True)
app.add_typer(bus_app, name="bus")


@contextmanager
def _bus(estate: Path):
    from syncfabric.bus import open_bus

    with _runtime(estate) as runtime:
        bus = open_bus(runtime.estate.bus, runtime.store)
        try:
            yield runtime, bus
        finally:
            bus.close()


@bus_app.command("relay")
def bus_relay(
    once: Annotated[bool, typer.Option("--once", help="Publish what is recorded now, then stop.")] = False,
    batch: Annotated[int, typer.Option(help="Changes per publish batch.", min=1)] = 1000,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Publish the store's change log to the bus (the transactional outbox relay), in the foreground.

    One relay publishes at a time (a lease in the store); start a second one as a standby. Stop with Ctrl-C."""
    import signal
    import threading

    from syncfabric.bus.relay import Relay

    with _boundary(), _bus(estate) as (runtime, bus):
        if bus.kind == "embedded":
            console.print("the embedded bus needs no relay: consumers read the change log directly "
                          "(set `bus: nats://...` in the estate to relay through NATS JetStream)")
            return
        relay = Relay(runtime.store, bus, batch=batch)
        if once:
            try:
                counts = relay.catch_up()
            finally:
                relay.release()
            console.print(f"published {counts.read:,} changes ({counts.new:,} new) to {bus.outbox}; "
                          f"checkpoint seq {counts.checkpoint:,} of {counts.head:,}", highlight=False)
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), TextColumn("{task.fields[state]}"),
                   TextColumn("published {task.fields[read]:,} ({task.fields[new]:,} new)"),
                   TextColumn("checkpoint {task.fields[checkpoint]:,} / head {task.fields[head]:,}"),
                   TextColumn("{task.fields[trouble]}"), TimeElapsedColumn())
        with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
            task = progress.add_task(f"relay → {bus.outbox}", total=None, state="starting", read=0, new=0,
                                     checkpoint=0, head=0, trouble="")

            def show(counts, leader: bool) -> None:
                trouble = f"[red]{counts.errors} failed batches, last: {counts.last_error[:80]}[/]" if counts.errors \
                    else ""
                progress.update(task, state="[green]publishing[/]" if leader else "[yellow]standby[/]",
                                read=counts.read, new=counts.new, checkpoint=counts.checkpoint, head=counts.head,
                                trouble=trouble)

            try:
                counts = relay.run(stop, progress=show)
            except KeyboardInterrupt:
                counts = relay.counts
        console.print(f"relay stopped: published {counts.read:,} changes ({counts.new:,} new)", highlight=False)


@bus_app.command("status")
def bus_status(estate: EstateOption = DEFAULT_ESTATE) -> None:
    """The bus: change-log head, what the relay published, and each consumer's lag and workers."""
    with _boundary(), _bus(estate) as (_, bus):
        status = bus.status()
        published = "" if status.published is None else f", relayed seq {status.published:,}"
        relay = f" by {status.relay}" if status.relay else (" (no relay running)" if status.published is not None
                                                             else "")
        console.print(f"bus {status.kind} {_masked(bus.url)}", highlight=False, soft_wrap=True)
        console.print(f"change log head seq {status.head:,}{published}{relay}", highlight=False, soft_wrap=True)
        console.print(bus_status_table(status))


def bus_status_table(status) -> Table:
    table = Table("consumer", "partitions", "pending", "unacked", "workers", title="Consumers")
    for c in status.consumers:
        table.add_row(c.consumer, str(c.partitions), f"[yellow]{c.pending:,}[/]" if c.pending else "0",
                      f"{c.unacked:,}", ", ".join(c.workers) or "[dim]none[/]")
    return table


if __name__ == "__main__":
    app()
