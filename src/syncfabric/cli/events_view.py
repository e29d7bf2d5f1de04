"""The event commands' work: ``syncfabric listen`` (subscriptions in the foreground, live count) and the
catalog table of ``syncfabric events list``. Kept out of ``events.py`` so that the command line starts fast."""

from __future__ import annotations

import signal
import time
from typing import Any

from rich.console import Console, Group, RenderableType
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


def run_listen(console: Console, runtime: Any, names: list[str], *, every: bool, duration: float | None,
               deliver: list[str] | None = None, deliver_all: bool = False, workers: int | None = None) -> None:
    """Listen until Ctrl-C, SIGTERM or ``duration``; with ``deliver``, those outbound flows are delivered by threads
    of this process, each commit of the listener waking them. Both start before the first event is taken (the
    consumers first, so that they see every commit), and both stop: the subscriptions first (the last batches
    commit and are acknowledged), then the consumers (each ends its session; what it has not delivered waits at its
    checkpoint for the next start)."""
    from syncfabric.flows.deliverers import Deliverers, streaming_flows

    if every:
        names = names + [name for name in subscribable_flows(runtime) if name not in names]
    outbound = list(deliver or [])
    if deliver_all:
        outbound += [name for name in streaming_flows(runtime) if name not in outbound]
    problems = [] if names else ["name at least one inbound event flow, or use --all"]
    listener = deliverers = None
    try:
        listener = _listener(console, runtime, names, workers) if names else None
    except ConfigError as exc:
        problems += exc.problems
    try:
        deliverers = Deliverers(runtime, outbound, option="--deliver") if outbound else None
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    assert listener is not None
    previous = signal.signal(signal.SIGTERM, lambda *_: listener.stop())
    started = time.monotonic()
    try:
        if deliverers is not None:
            deliverers.start()
        try:
            listener.start()
        except BaseException:
            if deliverers is not None:
                deliverers.join()
            raise
        where = ", ".join(f"{name} ({_source(runtime, name)})" for name in names)
        console.print(f"listening: {where}", highlight=False, soft_wrap=True)
        if deliverers is not None:
            console.print(f"delivering: {', '.join(deliverers.names)}", highlight=False, soft_wrap=True)
        console.file.flush()
        try:
            if console.is_terminal:
                with Live(_view(listener, deliverers, started), console=console, refresh_per_second=4) as live:
                    while not _done(listener, deliverers, started, duration):
                        live.update(_view(listener, deliverers, started))
            else:
                while not _done(listener, deliverers, started, duration):
                    pass
        except KeyboardInterrupt:
            pass
        listener.stop()
        listener.join()
        if deliverers is not None:
            deliverers.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    console.print(_view(listener, deliverers, started))
    if listener.errors:
        raise next(iter(listener.errors.values()))
    if deliverers is not None and deliverers.errors:
        raise deliverers.errors[0]


def _listener(console: Console, runtime: Any, names: list[str], workers: int | None) -> Any:
    """The flows in this process, or MQTT flows in worker processes (``--workers``, or a count recorded before)."""
    from syncfabric.flows.listen_workers import listener_for

    def event(line: str) -> None:
        console.print(line, highlight=False, soft_wrap=True)
        console.file.flush()

    return listener_for(runtime, names, workers, on_event=event)


def _view(listener: Any, deliverers: Any, started: float) -> RenderableType:
    if deliverers is None:
        return listen_table(listener, started)
    from syncfabric.cli.sync import delivery_table

    return Group(listen_table(listener, started), delivery_table(deliverers.consumers))


def _done(listener: Any, deliverers: Any, started: float, duration: float | None) -> bool:
    if listener.wait(0.25):
        return True
    if deliverers is not None and deliverers.errors:
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
