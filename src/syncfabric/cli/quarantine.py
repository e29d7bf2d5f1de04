"""``quarantine``: records rejected with their reasons, fixed and replayed or discarded."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from syncfabric.cli.common import (
    DEFAULT_ESTATE,
    EstateOption,
    FlowFilter,
    ReasonFilter,
    SystemFilter,
    _actor,
    _all_found,
    _boundary,
    _runtime,
    app,
    console,
    errors,
)
from syncfabric.errors import ConfigError, SyncfabricError

quarantine_app = typer.Typer(help="Records rejected with their reasons.", no_args_is_help=True)
app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.command("list")
def quarantine_list(
    flow: FlowFilter = None,
    system: SystemFilter = None,
    reason: ReasonFilter = None,
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
EveryOpenEntry = Annotated[bool, typer.Option("--all", help="Every open entry.")]


def _selected(runtime, ids: list[int] | None, flow: str | None, system: str | None, reason: str | None,
              every: bool) -> list:
    """The open entries named by ids and/or filters; refuses an empty selection unless ``--all`` says so."""
    if not (ids or flow or system or reason or every):
        raise ConfigError(["name entry ids, filter with --flow/--system/--reason, or use --all"])
    from syncfabric.store import QuarantineStatus

    entries = runtime.store.quarantine(status=None if ids else QuarantineStatus.OPEN, flow=flow, system=system,
                                       reason=reason, ids=ids or None)
    return _all_found(ids, entries, "quarantine entry")


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
    flow: FlowFilter = None,
    system: SystemFilter = None,
    reason: ReasonFilter = None,
    every: EveryOpenEntry = False,
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
    flow: FlowFilter = None,
    system: SystemFilter = None,
    reason: ReasonFilter = None,
    every: EveryOpenEntry = False,
    note: Annotated[str, typer.Option(help="Why, kept in the entries' history.")] = "",
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Close quarantined records without delivering them; `quarantine show ID` keeps showing them and their history."""
    from syncfabric.flows.replay import discard_entries

    with _boundary(), _runtime(estate) as runtime:
        entries = _selected(runtime, ids, flow, system, reason, every)
        discarded = discard_entries(runtime.store, entries, note=note, actor=_actor())
        console.print(f"discarded {len(discarded)} of {len(entries)}", highlight=False)
