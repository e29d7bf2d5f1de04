"""Sending again: ``deadletter`` (changes that could not be delivered) and ``replay``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from syncfabric.cli.common import (
    DEFAULT_ESTATE,
    EntityFilter,
    EstateOption,
    FlowFilter,
    KeyFilter,
    YesOption,
    _actor,
    _all_found,
    _boundary,
    _runtime,
    app,
    console,
    errors,
)
from syncfabric.errors import ConfigError, SyncfabricError

# -- dead letters -----------------------------------------------------------------------------------------------------

deadletter_app = typer.Typer(help="Changes outbound flows could not deliver, with reason and attempt history.",
                             no_args_is_help=True)
app.add_typer(deadletter_app, name="deadletter")
DeadLetterIds = Annotated[list[int] | None, typer.Argument(help="Dead letter ids.", show_default=False)]
EveryOpenDeadLetter = Annotated[bool, typer.Option("--all", help="Every open dead letter.")]


def _dead_letters(runtime, ids: list[int] | None, flow: str | None, entity: str | None, key: str | None,
                  every: bool) -> list:
    """The open dead letters named by ids and/or filters; refuses an empty selection unless ``--all`` says so."""
    if not (ids or flow or entity or key or every):
        raise ConfigError(["name dead letter ids, filter with --flow/--entity/--key, or use --all"])
    entries = runtime.store.dead_letters(flow=flow, entity=entity, key=key, ids=ids or None)
    return _all_found(ids, entries, "open dead letter")


@deadletter_app.command("list")
def deadletter_list(
    flow: FlowFilter = None,
    entity: EntityFilter = None,
    key: KeyFilter = None,
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
    flow: FlowFilter = None,
    entity: EntityFilter = None,
    key: KeyFilter = None,
    every: EveryOpenDeadLetter = False,
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
    flow: FlowFilter = None,
    entity: EntityFilter = None,
    key: KeyFilter = None,
    every: EveryOpenDeadLetter = False,
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
    entity: EntityFilter = None,
    key: KeyFilter = None,
    every: Annotated[bool, typer.Option("--all", help="Everything the flow has delivered.")] = False,
    dead_letters: Annotated[bool, typer.Option(
        "--dead-letters", help="Resend the flow's dead-lettered keys instead (after a fix); --entity and --key "
                               "apply.")] = False,
    yes: YesOption = False,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Resend changes to an outbound flow's target: from a sequence or a time, for a key or an entity, or its dead
    letters. Shows what it will send and asks first; the target applies each version once."""
    from syncfabric.flows.resend import Selection, plan_resend, resend
    from syncfabric.flows.retry import RetryPolicy
    from syncfabric.observe.clock import parse_instant

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
                when = parse_instant(since)
            except ValueError:
                raise ConfigError([f"--since: not an ISO 8601 time: {since!r}"]) from None
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
