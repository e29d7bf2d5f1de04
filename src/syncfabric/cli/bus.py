"""``bus``: the change-log relay to NATS JetStream and consumer lag."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from syncfabric.cli.common import (
    DEFAULT_ESTATE,
    EstateOption,
    _boundary,
    _masked,
    _runtime,
    app,
    console,
)

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
