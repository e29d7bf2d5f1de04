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
def demo(
    seed: Annotated[int, typer.Option(help="Seed of the simulated data.")] = 7,
    items: Annotated[int, typer.Option(help="Items in the simulated legacy ERP.")] = 200,
    keep: Annotated[Path | None, typer.Option(help="Build the demo estate in this folder and keep it.")] = None,
) -> None:
    """Build the sandbox estate in a temporary folder, run the walking skeleton, and show what moved."""
    from syncfabric.sandbox.demo import run_demo

    with _boundary():
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


if __name__ == "__main__":
    app()
