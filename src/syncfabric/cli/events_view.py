"""The event commands' work: ``syncfabric listen`` (subscriptions in the foreground, live count) and the
catalog table of ``syncfabric events list``. Kept out of ``events.py`` so that the command line starts fast."""

from __future__ import annotations

import signal
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from syncfabric.errors import ConfigError


def events_table() -> Table:
    from syncfabric.events.catalog import EVENT_TYPES

    table = Table("event", "version", "topic", "owner", "entity", "what it is", title="Business events")
    for column in table.columns[:5]:
        column.no_wrap = True
    for event in EVENT_TYPES:
        table.add_row(event.name, f"v{event.version}", event.topic("<site>"), event.owner, event.entity,
                      event.summary)
    return table


def subscribable_flows(runtime: Any) -> list[str]:
    from syncfabric.connectors.base import Capability
    from syncfabric.connectors.registry import connector_class

    estate = runtime.estate
    return [name for name, flow in estate.flows.items() if flow.direction == "inbound"
            and connector_class(estate.systems[flow.system].kind).capabilities & Capability.SUBSCRIBE]


def run_listen(console: Console, runtime: Any, names: list[str], *, every: bool, duration: float | None) -> None:
    from syncfabric.flows.listen import Listener

    if every:
        names = names + [name for name in subscribable_flows(runtime) if name not in names]
    if not names:
        raise ConfigError(["name at least one inbound event flow, or use --all"])
    listener = Listener(runtime, names)
    previous = signal.signal(signal.SIGTERM, lambda *_: listener.stop())
    started = time.monotonic()
    try:
        listener.start()
        where = ", ".join(f"{name} ({_source(runtime, name)})" for name in names)
        console.print(f"listening: {where}", highlight=False, soft_wrap=True)
        console.file.flush()
        try:
            if console.is_terminal:
                with Live(listen_table(listener, started), console=console, refresh_per_second=4) as live:
                    while not _done(listener, started, duration):
                        live.update(listen_table(listener, started))
            else:
                while not _done(listener, started, duration):
                    pass
        except KeyboardInterrupt:
            pass
        listener.stop()
        listener.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    console.print(listen_table(listener, started))
    if listener.errors:
        raise next(iter(listener.errors.values()))


def _done(listener: Any, started: float, duration: float | None) -> bool:
    if listener.wait(0.25):
        return True
    return duration is not None and time.monotonic() - started >= duration


def _source(runtime: Any, name: str) -> str:
    flow = runtime.estate.flows[name]
    system = runtime.estate.systems[flow.system]
    return f"{system.kind} {flow.system} {flow.source or flow.entities[0]}"


def listen_table(listener: Any, started: float) -> Table:
    elapsed = max(time.monotonic() - started, 1e-9)
    table = Table("flow", "received", "stored", "unchanged", "quarantined", "batches", "events/s",
                  title="Listening" if not listener.stop_event.is_set() else "Listened")
    for name in listener.names:
        r = listener.results.get(name)
        if r is None:
            continue
        table.add_row(name, f"{r.received:,}", f"{r.inserted + r.updated:,}", f"{r.unchanged:,}",
                      f"[red]{r.quarantined:,}[/]" if r.quarantined else "0", f"{r.batches:,}",
                      f"{r.received / elapsed:,.0f}")
    return table
