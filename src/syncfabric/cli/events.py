"""``listen`` and ``events``; their work lives in ``events_view`` so that the command line starts fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from syncfabric.cli.common import (
    DEFAULT_ESTATE,
    EstateOption,
    _boundary,
    _runtime,
    app,
    console,
)


@app.command()
def listen(
    flows: Annotated[list[str] | None, typer.Argument(help="Inbound event flows to run.")] = None,
    all_flows: Annotated[bool, typer.Option("--all", help="Every inbound flow of a system that pushes events.")] = (
        False),
    duration: Annotated[float | None, typer.Option("--for", help="Stop after this many seconds.")] = None,
    deliver: Annotated[list[str] | None, typer.Option(
        "--deliver", help="Also deliver this outbound flow (mode changes) continuously, in this process, woken by "
        "each commit (repeatable).")] = None,
    deliver_all: Annotated[bool, typer.Option(
        "--deliver-all", help="Also deliver every outbound flow in mode changes, in this process.")] = False,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, max=64, help="Run each MQTT flow in this many worker processes, members of one MQTT "
        "shared subscription (recorded: later runs keep the count until given another).")] = None,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Run event subscriptions (MQTT, webhooks) in the foreground with a live count; Ctrl-C or SIGTERM stops.
    With --deliver, the listed outbound flows are delivered in the same process as the events commit."""
    from syncfabric.cli.events_view import run_listen

    with _boundary(), _runtime(estate) as runtime:
        run_listen(console, runtime, list(flows or []), every=all_flows, duration=duration,
                   deliver=list(deliver or []), deliver_all=deliver_all, workers=workers)


events_app = typer.Typer(help="The catalog of business events.", no_args_is_help=True)
app.add_typer(events_app, name="events")


@events_app.command("list")
def events_list() -> None:
    """List the business event types: topic, version, owning system, canonical entity."""
    from syncfabric.cli.events_view import events_table

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
