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
        reconciled = reconcile_table(runtime)
        if reconciled is not None:
            console.print(reconciled)
        for table in observe_tables(runtime):
            console.print(table)


def reconcile_table(runtime) -> Table | None:
    """The last reconciliation of each domain, from the run history."""
    latest: dict[str, object] = {}
    for run in runtime.store.runs(limit=500):
        if run.flow.startswith("reconcile:"):
            latest.setdefault(run.flow.removeprefix("reconcile:"), run)
    if not latest:
        return None
    table = Table("domain", "when", "result", "missing/extra/different", title="Reconciliations")
    for domain, run in sorted(latest.items()):
        comparisons = run.detail.get("comparisons") or []
        compared = ", ".join(f"{c['right']}: {c['missing']}/{c['extra']}/{c['different']}" for c in comparisons)
        verdict = "[green]match[/]" if run.detail.get("match") else "[red]differ[/]"
        table.add_row(domain, f"{run.started_at:%Y-%m-%d %H:%M:%S}", verdict, compared or "—")
    return table


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
                             ("mapping", entry.mapping_version or "—"),
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


record_app = typer.Typer(help="Stored canonical records.", no_args_is_help=True)
app.add_typer(record_app, name="record")


@record_app.command("show")
def record_show(
    entity: Annotated[str, typer.Argument(help="The canonical entity: item, inventory_balance, ...")],
    key: Annotated[str, typer.Argument(help="The record's canonical key (e.g. B|P1| for a balance).")],
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Show a stored record: its current payload, the raw record it was mapped from, and the lineage of every
    version (source system, where in the source, batch, mapping version)."""
    with _boundary(), _runtime(estate) as runtime:
        store = runtime.store
        row = store.get(entity, key)
        if row is None:
            raise SyncfabricError(f"no {entity} {key!r} in the store")
        state = "deleted" if row.deleted else "live"
        console.print(f"[bold]{entity} {key}[/] — version {row.version}, {state}, "
                      f"updated {row.updated_at:%Y-%m-%d %H:%M:%S}", highlight=False)
        if row.payload is not None:
            console.print(json.dumps(json.loads(row.payload), indent=2, ensure_ascii=False), highlight=False,
                          markup=False, soft_wrap=True)
        source = next(store.sources(entity, keys=[key]), None)
        if source is not None:
            console.print(f"[bold]raw record[/] (flow {source.flow}, {source.source_id or 'no location'})",
                          highlight=False)
            console.print(source.raw, highlight=False, markup=False, soft_wrap=True)
        lineage = Table("seq", "version", "op", "recorded", "system", "where", "batch", "mapping version",
                        title="lineage")
        for change in store.history(entity, key):
            lineage.add_row(str(change.seq), str(change.version), change.op.value,
                            f"{change.recorded_at:%Y-%m-%d %H:%M:%S}", change.lineage.source_system,
                            change.lineage.source_id, change.lineage.batch_id, change.lineage.mapping_version)
        console.print(lineage)


mapping_app = typer.Typer(help="Mappings: their impact on the store, and their tests.", no_args_is_help=True)
app.add_typer(mapping_app, name="mapping")


@mapping_app.command("diff")
def mapping_diff(
    flows: Annotated[list[str] | None, typer.Option("--flow", help="Only this inbound flow (repeatable).")] = None,
    samples: Annotated[int, typer.Option(help="Records shown per flow.")] = 20,
    check: Annotated[bool, typer.Option("--check", help="Exit with code 1 when any record would change.")] = False,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Dry run: which stored records the estate's mappings, as the file now says, would change, and which
    quarantined records they would now accept. Writes nothing."""
    from syncfabric.flows.impact import impact_tables, mapping_impact

    with _boundary(), _runtime(estate) as runtime:
        columns = (SpinnerColumn(), TextColumn("[bold]re-mapping"), BarColumn(),
                   TextColumn("{task.completed:,} records"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
            task = progress.add_task("diff", total=None)
            impact = mapping_impact(runtime.store, runtime.estate, flows=flows, samples=samples,
                                    progress=lambda n: progress.advance(task, n))
        summary, versions, samples_table, notes = impact_tables(impact)
        console.print(summary)
        for line in versions:
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        if samples_table.row_count:
            console.print(samples_table)
        for note in notes:
            errors.print(note, highlight=False)
        console.print(impact.summary(), highlight=False)
        if check and impact.changes:
            raise typer.Exit(1)


@mapping_app.command("test")
def mapping_test(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Fixture files or folders (default: mapping-tests/ next to the estate file).", show_default=False)] = None,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Run mapping tests: YAML fixtures of raw records with the canonical record (or the errors) each must give."""
    from rich.text import Text

    from syncfabric.config import load_estate
    from syncfabric.flows.mapping_cases import find_files, load_cases, run_cases

    with _boundary():
        loaded = load_estate(estate)
        files = find_files(paths or [], loaded.base_dir / "mapping-tests")
        cases = [case for file in files for case in load_cases(file, loaded.estate)]
        results = run_cases(loaded.estate, cases)
        failed = [result for result in results if not result.passed]
        table = Table("file", "mapping", "case", "result",
                      title=f"{len(results) - len(failed)} of {len(results)} mapping tests passed")
        for result in results:
            case = result.case
            table.add_row(f"{case.file.name}:{case.line}", case.mapping, Text(case.name),
                          "[green]pass[/]" if result.passed else "[red]FAIL[/]")
        console.print(table)
        for result in failed:
            console.print(f"[red]FAIL[/] {result.case.where} {result.case.name} ({result.case.mapping})",
                          highlight=False)
            for line in result.failures:
                console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
        if failed:
            raise typer.Exit(1)


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
    stream: Annotated[bool, typer.Option(
        "--stream", help="Continuous delivery instead: stream to the planning platform through an outage.")] = False,
    outage_seconds: Annotated[float, typer.Option(help="With --stream: how long the platform is down.")] = 5.0,
    walking_skeleton: Annotated[bool, typer.Option(
        "--walking-skeleton", help="The walking skeleton instead: one legacy ERP to the planning platform.")] = False,
    duration: Annotated[float, typer.Option(
        help="Global manufacturer: real seconds the two simulated days take at least.")] = 30.0,
    keep_running: Annotated[bool, typer.Option(
        "--keep-running", help="Global manufacturer: keep the simulated systems running at the end.")] = False,
) -> None:
    """The global manufacturer (three ERPs, four plants' MES, logistics, suppliers, planning) under hybrid sync and
    under nightly batch, measured side by side; or, with --walking-skeleton / --stream, the smaller demos."""
    from syncfabric.sandbox.demo import run_demo

    with _boundary():
        if not (stream or walking_skeleton):
            from syncfabric.sandbox.global_demo import run_global_demo

            run_global_demo(console, duration=duration, seed=seed, keep_running=keep_running, folder=keep)
            return
        if stream:
            from syncfabric.sandbox.stream_demo import run_stream_demo

            run_stream_demo(console, seed=seed, items=items, outage_seconds=outage_seconds, folder=keep)
            return
        run_demo(console, seed=seed, items=items, folder=keep)


@app.command("sap-sandbox")
def sap_sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 to serve on.")] = 8710,
    user: Annotated[str, typer.Option(help="Basic-auth user.")] = "INTEGRATION",
    password: Annotated[str, typer.Option(envvar="S4_PASSWORD", help="Basic-auth password.")] = "Welcome1!",
    seed: Annotated[int, typer.Option(help="Seed of the simulated company's data.")] = 42,
) -> None:
    """Serve the SAP S/4HANA OData v2 emulator (products, stock, purchase and production orders, suppliers) until
    interrupted; examples/sap-s4hana/estate.yaml points at it."""
    import time

    from syncfabric.sandbox.sap_odata import ROOT, create_app
    from syncfabric.sandbox.server import serve

    with serve(create_app({user: password}, seed=seed), port=port) as url:
        console.print(f"SAP S/4HANA emulator on [bold]{url}{ROOT}/[/] (user {user}); Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


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


def _bad(count: int) -> str:
    return f"[red]{count:,}[/]" if count else "0"
# -- continuous delivery ----------------------------------------------------------------------------------------------


@app.command()
def deliver(
    flows: Annotated[list[str], typer.Argument(help="Outbound flows (mode changes) to deliver continuously.")],
    until_idle: Annotated[bool, typer.Option(
        "--until-idle", help="Stop once every flow is caught up, instead of following the change log.")] = False,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Deliver changes to outbound flows' targets as they are recorded, with live counts; Ctrl-C stops."""
    import threading
    from contextlib import ExitStack

    from rich.live import Live

    from syncfabric.flows.stream import consumer_for

    with _boundary(), _runtime(estate) as runtime, ExitStack() as stack:
        consumers = [consumer_for(runtime, name,
                                  stack.enter_context(runtime.connector(_flow_system(runtime, name), name)))
                     for name in dict.fromkeys(flows)]
        stop = threading.Event()
        failures: list[BaseException] = []

        def run(consumer, finished: threading.Event) -> None:
            try:
                consumer.run(stop, until_idle=until_idle)
            except BaseException as exc:
                failures.append(exc)
                stop.set()
            finally:
                finished.set()

        # Events, not Thread.join: a join interrupted by Ctrl-C can report a live thread as ended, and the store
        # would be closed under a consumer still ending its session.
        done = [threading.Event() for _ in consumers]
        threads = [threading.Thread(target=run, args=(c, d), name=f"deliver-{c.flow}", daemon=True)
                   for c, d in zip(consumers, done, strict=True)]
        for thread in threads:
            thread.start()
        with Live(delivery_table(consumers), console=console, refresh_per_second=4,
                  auto_refresh=console.is_terminal, transient=False) as live:
            try:
                while not all(finished.is_set() for finished in done):
                    for finished in done:
                        finished.wait(timeout=0.25)
                    live.update(delivery_table(consumers))
            except KeyboardInterrupt:
                stop.set()
                for finished in done:
                    finished.wait()
            live.update(delivery_table(consumers), refresh=True)
        if failures:
            raise failures[0]


def _flow_system(runtime, name: str) -> str:
    flow = runtime.estate.flows.get(name)
    if flow is None:
        raise ConfigError([f"unknown flow {name!r}; flows: {', '.join(runtime.estate.flows) or 'none'}"])
    return flow.system


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


# -- dead letters -----------------------------------------------------------------------------------------------------

deadletter_app = typer.Typer(help="Changes outbound flows could not deliver, with reason and attempt history.",
                             no_args_is_help=True)
app.add_typer(deadletter_app, name="deadletter")
DeadLetterIds = Annotated[list[int] | None, typer.Argument(help="Dead letter ids.", show_default=False)]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def _dead_letters(runtime, ids: list[int] | None, flow: str | None, entity: str | None, key: str | None,
                  every: bool) -> list:
    """The open dead letters named by ids and/or filters; refuses an empty selection unless ``--all`` says so."""
    if not (ids or flow or entity or key or every):
        raise ConfigError(["name dead letter ids, filter with --flow/--entity/--key, or use --all"])
    entries = runtime.store.dead_letters(flow=flow, entity=entity, key=key, ids=ids or None)
    if ids:
        missing = sorted(set(ids) - {entry.id for entry in entries})
        if missing:
            raise SyncfabricError(f"no open dead letter {', '.join(map(str, missing))} (with these filters)")
    return entries


@deadletter_app.command("list")
def deadletter_list(
    flow: Annotated[str | None, typer.Option(help="Only this flow.")] = None,
    entity: Annotated[str | None, typer.Option(help="Only this entity.")] = None,
    key: Annotated[str | None, typer.Option(help="Only this record key.")] = None,
    status: Annotated[str, typer.Option(help="open, replayed, discarded or all.")] = "open",
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """List dead letters: what could not be delivered, where to, and why."""
    from syncfabric.store import DeadLetterStatus

    with _boundary(), _runtime(estate) as runtime:
        if status != "all" and status not in {s.value for s in DeadLetterStatus}:
            raise ConfigError([f"--status must be open, replayed, discarded or all, got {status!r}"])
        entries = runtime.store.dead_letters(status=None if status == "all" else DeadLetterStatus(status),
                                             flow=flow, entity=entity, key=key)
        table = Table("id", "flow", "system", "entity", "key", "version", "change", "status", "attempts", "reason",
                      title=f"{len(entries)} dead letters")
        for e in entries:
            table.add_row(str(e.id), e.flow, e.system, e.entity, e.record_key, str(e.version), str(e.seq),
                          e.status.value, str(len(e.attempts)), e.reason)
        console.print(table)


@deadletter_app.command("show")
def deadletter_show(
    entry_id: Annotated[int, typer.Argument(metavar="ID", help="The dead letter.")],
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Show one dead letter: the change, the reason, the payload and every attempt with its time."""
    with _boundary(), _runtime(estate) as runtime:
        found = runtime.store.dead_letters(status=None, ids=[entry_id])
        if not found:
            raise SyncfabricError(f"no dead letter {entry_id}")
        e = found[0]
        console.print(f"[bold]dead letter {e.id}[/] — {e.status.value}", highlight=False)
        for label, value in (("flow", e.flow), ("target", e.system), ("entity", e.entity), ("key", e.record_key),
                             ("version", str(e.version)), ("change", f"seq {e.seq}"),
                             ("held by", f"#{e.held_by}" if e.held_by else "—"), ("reason", e.reason)):
            console.print(f"  {label:8} {value}", highlight=False, markup=False)
        console.print("[bold]payload[/]")
        payload = "(a deletion)" if e.payload is None else json.dumps(json.loads(e.payload), indent=2,
                                                                       ensure_ascii=False)
        console.print(payload, highlight=False, markup=False, soft_wrap=True)
        history = Table("when", "outcome", "detail", title="attempts")
        for attempt in e.attempts:
            history.add_row(f"{attempt.at:%Y-%m-%d %H:%M:%S.%f}"[:-3], attempt.outcome, attempt.detail)
        console.print(history)


@deadletter_app.command("replay")
def deadletter_replay(
    ids: DeadLetterIds = None,
    flow: Annotated[str | None, typer.Option(help="Only this flow.")] = None,
    entity: Annotated[str | None, typer.Option(help="Only this entity.")] = None,
    key: Annotated[str | None, typer.Option(help="Only this record key.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every open dead letter.")] = False,
    yes: YesOption = False,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Resend dead-lettered changes after a fix: per key, its newest change; shows what it will send first."""
    with _boundary(), _runtime(estate) as runtime:
        _replay_dead_letters(runtime, _dead_letters(runtime, ids, flow, entity, key, every), yes)


def _replay_dead_letters(runtime, entries: list, yes: bool) -> None:
    from syncfabric.flows.deadletters import plan, replay_keys
    from syncfabric.flows.retry import RetryPolicy

    plans = plan(runtime.store, entries)
    table = Table("flow", "entity", "key", "version", "change", "closes dead letters",
                  title=f"{len(plans)} keys to resend")
    for p in plans:
        table.add_row(p.newest.flow, p.newest.entity, p.newest.record_key, str(p.newest.version),
                      str(p.newest.seq), ", ".join(f"#{e.id}" for e in p.entries))
    console.print(table)
    if not plans or not (yes or typer.confirm(f"Resend {len(plans)} keys?")):
        console.print("nothing sent")
        return
    failed = 0
    for flow_name in dict.fromkeys(p.newest.flow for p in plans):
        spec = runtime.estate.flows.get(flow_name)
        if spec is None or spec.direction != "outbound":
            raise ConfigError([f"flow {flow_name!r} is not an outbound flow of this estate"])
        with runtime.connector(spec.system, flow_name) as connector:
            outcome = replay_keys(runtime.store, connector, [p for p in plans if p.newest.flow == flow_name],
                                  retry=RetryPolicy.from_spec(spec.delivery.retry), actor=_actor())
        console.print(f"{flow_name}: delivered {len(outcome.delivered)} keys, closed {len(outcome.replayed)} "
                      f"dead letters, failed again {len(outcome.failed)}", highlight=False)
        for entry_id, reason in outcome.failed.items():
            errors.print(f"  {entry_id}: {reason}", highlight=False, markup=False, soft_wrap=True)
        failed += len(outcome.failed)
    if failed:
        raise typer.Exit(1)


@deadletter_app.command("discard")
def deadletter_discard(
    ids: DeadLetterIds = None,
    flow: Annotated[str | None, typer.Option(help="Only this flow.")] = None,
    entity: Annotated[str | None, typer.Option(help="Only this entity.")] = None,
    key: Annotated[str | None, typer.Option(help="Only this record key.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every open dead letter.")] = False,
    note: Annotated[str, typer.Option(help="Why, kept in the attempt history.")] = "",
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Close dead letters without delivering them; a key stays held while it has other open ones."""
    from syncfabric.flows.deadletters import discard

    with _boundary(), _runtime(estate) as runtime:
        entries = _dead_letters(runtime, ids, flow, entity, key, every)
        discarded = discard(runtime.store, entries, note=note, actor=_actor())
        console.print(f"discarded {len(discarded)} of {len(entries)}", highlight=False)


# -- replay -----------------------------------------------------------------------------------------------------------

PREVIEW_ROWS = 20


@app.command()
def replay(
    flow: Annotated[str, typer.Argument(help="The outbound flow whose target gets the changes again.")],
    from_seq: Annotated[int | None, typer.Option("--from-seq", help="From this change-log sequence (inclusive).")] \
        = None,
    since: Annotated[str | None, typer.Option(
        help="From this time (ISO 8601; UTC unless it carries an offset), inclusive.")] = None,
    entity: Annotated[str | None, typer.Option(help="Only this entity.")] = None,
    key: Annotated[str | None, typer.Option(help="Only this record key.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Everything the flow has delivered.")] = False,
    dead_letters: Annotated[bool, typer.Option(
        "--dead-letters", help="Resend the flow's dead-lettered keys instead (after a fix); --entity and --key "
                               "apply.")] = False,
    yes: YesOption = False,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Resend changes to an outbound flow's target: from a sequence or a time, for a key or an entity, or its dead
    letters. Shows what it will send and asks first; the target applies each version once."""
    import datetime as dt

    from syncfabric.flows.resend import Selection, plan_resend, resend
    from syncfabric.flows.retry import RetryPolicy

    with _boundary(), _runtime(estate) as runtime:
        spec = runtime.estate.flows.get(flow)
        if spec is None or spec.direction != "outbound":
            raise ConfigError([f"{flow!r} is not an outbound flow of this estate"])
        if dead_letters:
            if from_seq is not None or since is not None or every:
                raise ConfigError(["--dead-letters takes --entity and --key only, not --from-seq, --since or --all"])
            entries = runtime.store.dead_letters(flow=flow, entity=entity, key=key)
            _replay_dead_letters(runtime, entries, yes)
            return
        if from_seq is None and since is None and entity is None and key is None and not every:
            raise ConfigError(["say what to resend: --from-seq, --since, --entity, --key, or --all"])
        when = None
        if since is not None:
            try:
                when = dt.datetime.fromisoformat(since)
            except ValueError:
                raise ConfigError([f"--since: not an ISO 8601 time: {since!r}"]) from None
            when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
        selection = Selection(from_seq=from_seq, since=when, entity=entity, key=key)
        plan = plan_resend(runtime.store, flow, spec.entities, selection)
        table = Table("change", "entity", "key", "version", "op", "recorded",
                      title=f"{len(plan.changes):,} records to resend to {spec.system} (flow {flow})",
                      caption=f"{plan.matched:,} change-log entries up to the checkpoint (seq {plan.checkpoint}); "
                              f"{plan.pending:,} after it are left to the flow; "
                              f"{len(plan.held):,} keys held by dead letters skipped")
        for change in plan.changes[:PREVIEW_ROWS]:
            table.add_row(str(change.seq), change.entity, change.key, str(change.version), change.op.value,
                          f"{change.recorded_at:%Y-%m-%d %H:%M:%S}")
        if len(plan.changes) > PREVIEW_ROWS:
            table.add_row("…", f"{len(plan.changes) - PREVIEW_ROWS:,} more", "", "", "", "")
        console.print(table)
        if not plan.changes or not (yes or typer.confirm(f"Resend {len(plan.changes):,} records?")):
            console.print("nothing sent")
            return
        columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                   TextColumn("{task.completed:,}/{task.total:,} records"), TimeElapsedColumn())
        with runtime.connector(spec.system, flow) as connector, Progress(
                *columns, console=console, transient=True, disable=not console.is_terminal) as progress:
            task = progress.add_task(f"replay {flow}", total=len(plan.changes))
            result = resend(runtime.store, connector, plan, batch_size=spec.batch_size,
                            retry=RetryPolicy.from_spec(spec.delivery.retry), selection=selection,
                            progress=lambda n: progress.advance(task, n))
        console.print(f"resent {len(plan.changes):,}: accepted {result.records_out:,}, "
                      f"dead-lettered {result.dead_lettered:,}", highlight=False)
        if result.dead_lettered:
            raise typer.Exit(1)


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


@metrics_app.command("serve")
def metrics_serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 9464,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Serve the metrics on http://127.0.0.1:PORT/metrics for Prometheus to scrape, until Ctrl-C."""
    import time

    from syncfabric.observe.metrics import serve

    with _boundary(), _runtime(estate) as runtime, serve(runtime.estate, runtime.store, port=port) as url:
        console.print(f"metrics on [bold]{url}/metrics[/]; Ctrl-C to stop", highlight=False)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


@metrics_app.command("prune")
def metrics_prune(
    days: Annotated[float, typer.Option(help="Keep the delivery log of this many days.")] = 7.0,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Delete delivery-log rows older than DAYS (the newest of each flow, entity and location stays)."""
    import datetime as dt

    with _boundary(), _runtime(estate) as runtime:
        before = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        deleted = runtime.store.prune_deliveries(before)
        console.print(f"deleted {deleted:,} delivery-log rows confirmed before {before:%Y-%m-%d %H:%M} UTC",
                      highlight=False)


plan_app = typer.Typer(help="Planned orders waiting for planner review on their way back into the ERPs.",
                       no_args_is_help=True)
app.add_typer(plan_app, name="plan")


@plan_app.command("review")
def plan_review(
    flow: Annotated[str | None, typer.Option(help="Only this write-back flow.")] = None,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """List the planned orders waiting for a planner, and why (the flow's write_back.review rules)."""
    from syncfabric.flows.write_back import REVIEW, waiting

    with _boundary(), _runtime(estate) as runtime:
        entries = waiting(runtime.store, flow)
        table = Table("flow", "planned order", "version", "waits because", "since",
                      title=f"{len(entries)} planned orders waiting for review")
        for e in entries:
            table.add_row(e.flow, e.record_key, str(e.version), e.reason.removeprefix(REVIEW + ": "),
                          f"{e.attempts[0].at:%Y-%m-%d %H:%M}" if e.attempts else "")
        console.print(table)


@plan_app.command("approve")
def plan_approve(
    keys: Annotated[list[str] | None, typer.Argument(help="Planned order keys.", show_default=False)] = None,
    flow: Annotated[str, typer.Option(help="The write-back flow they wait in.")] = ...,  # type: ignore[assignment]
    every: Annotated[bool, typer.Option("--all", help="Every order waiting in the flow.")] = False,
    by: Annotated[str, typer.Option(help="Who approves (kept with each dead letter).")] = "planner",
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Approve waiting planned orders: write them into the flow's ERP now, as approved by --by."""
    from syncfabric.flows.write_back import approve, waiting

    with _boundary(), _runtime(estate) as runtime:
        if flow not in runtime.estate.flows:
            raise ConfigError([f"no flow {flow!r} in the estate"])
        open_keys = {e.record_key for e in waiting(runtime.store, flow)}
        chosen = sorted(open_keys) if every else list(keys or [])
        if not chosen:
            raise ConfigError(["name planned order keys, or use --all"])
        unknown = sorted(set(chosen) - open_keys)
        if unknown:
            raise SyncfabricError(f"not waiting for review in {flow}: {', '.join(unknown)}")
        outcome = approve(runtime, flow, chosen, actor=by)
        console.print(f"approved and written: {len(outcome.delivered)}; refused by the ERP: "
                      f"{len(set(outcome.failed.values()))}", highlight=False)
        for reason in sorted(set(outcome.failed.values())):
            console.print(f"  {reason}", highlight=False, markup=False)
        if outcome.failed:
            raise typer.Exit(1)


if __name__ == "__main__":
    app()
