"""Planned orders on their way back into the ERPs: ``plan review`` and ``plan approve``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from syncfabric.cli.common import DEFAULT_ESTATE, EstateOption, _boundary, _runtime, app, console
from syncfabric.errors import ConfigError, SyncfabricError

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
