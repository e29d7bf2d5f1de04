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
            from syncfabric.cli_events import subscribable_flows

            events = subscribable_flows(runtime)
            names = [name for name in names if name not in events]
            if events and not names:
                raise ConfigError(["every flow of this estate is an event flow: run them with "
                                   "`syncfabric listen --all`"])
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
        text = json.loads(checkpoint).get("cursor") or "{}"
        if not text.startswith("{"):  # a subscription: where its last committed event came from
            return text if len(text) <= 60 else "…" + text[-59:]
        cursor = json.loads(text)
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
def listen(
    flows: Annotated[list[str] | None, typer.Argument(help="Inbound event flows to run.")] = None,
    all_flows: Annotated[bool, typer.Option("--all", help="Every inbound flow of a system that pushes events.")] = (
        False),
    duration: Annotated[float | None, typer.Option("--for", help="Stop after this many seconds.")] = None,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Run event subscriptions (MQTT, webhooks) in the foreground with a live count; Ctrl-C or SIGTERM stops."""
    from syncfabric.cli_events import run_listen

    with _boundary(), _runtime(estate) as runtime:
        run_listen(console, runtime, list(flows or []), every=all_flows, duration=duration)


events_app = typer.Typer(help="The catalog of business events.", no_args_is_help=True)
app.add_typer(events_app, name="events")


@events_app.command("list")
def events_list() -> None:
    """List the business event types: topic, version, owning system, canonical entity."""
    from syncfabric.cli_events import events_table

    console.print(events_table())


@events_app.command("schema")
def events_schema(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for one <topic>.v<N>.schema.json each.")] = Path(
        "schemas/events"),
) -> None:
    """Write the versioned JSON Schema of every business event type."""
    from syncfabric.events.catalog import write_event_schemas

    written = write_event_schemas(out)
    console.print(f"wrote {len(written)} event schemas to {out}")


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


if __name__ == "__main__":
    app()
