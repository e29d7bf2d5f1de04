"""Parallel ingest of MQTT event flows (``syncfabric listen FLOW --workers N``): N worker processes per flow, each one
member of the flow's MQTT shared subscription, so that the broker spreads the flow's messages across them.

Each worker is a process of its own (its own MQTT client, mapping and commits: one Python MQTT client tops out at a
few thousand messages a second) with a persistent session of its own, ``<client_id>-<flow>-w<i>``, subscribed to
``$share/<client_id>-<flow>/<filter>`` with QoS 1. It takes, maps, checks and commits its batches exactly as
``listen`` does in one process (:func:`~syncfabric.flows.listen.listen_flow`), and acknowledges each message after
its own commit; the store serializes the workers' write transactions (SQLite's file lock, PostgreSQL's advisory
lock). A worker that dies (killed, crashed) is started again by the parent with capped backoff; the messages it had
not acknowledged, and those the broker handed its session meanwhile, wait in its session and come on reconnect.

Per-key order across workers is not kept by MQTT (each message goes to one member, whichever it is); the store
keeps the newest event of a key by source time (see :mod:`syncfabric.flows.listen`).

The layout of a flow's sessions is recorded in the store (checkpoint ``<flow>#mqtt-workers``): how many workers,
and which sessions are to be retired. A session left behind would keep receiving a share of the messages (mosquitto
hands messages to offline members too), so when the count goes down, or the flow first leaves its single session of
``listen`` without ``--workers``, those sessions are retired: a worker connects as each, unsubscribes, ingests what
it still holds until it has been quiet for :data:`QUIET_SECONDS`, then removes the session. ``listen FLOW`` without
``--workers`` runs a flow with a recorded layout with that many workers again.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

import msgspec

from syncfabric.connectors.base import Received
from syncfabric.errors import ConfigError, PermanentError
from syncfabric.flows.lease import pid_alive
from syncfabric.flows.listen import MAX_WAIT, Listener, ListenResult, listen_flow
from syncfabric.store import RunStatus, Store

if TYPE_CHECKING:
    from syncfabric.flows.runtime import Runtime

LAYOUT = "{flow}#mqtt-workers"
"""Name of the checkpoint holding a flow's session layout."""
PLAIN = "plain"
"""The flow's own unshared session (``<client_id>-<flow>``) of ``listen`` without ``--workers``."""
QUIET_SECONDS = 2.0
"""A retiring session that delivered nothing for this long holds nothing more."""
RESTART_MAX_SECONDS = 10.0
READY_TIMEOUT = 60.0
EXIT_PERMANENT = 3
"""Exit status of a worker that failed for a reason a restart does not fix (configuration, refused credentials)."""


class Layout(msgspec.Struct, forbid_unknown_fields=True):
    workers: int
    retire: list[str] = []
    """Sessions still to be retired: ``plain``, or member names (``w3``)."""


def read_layout(store: Store, flow: str) -> Layout | None:
    text = store.checkpoint(LAYOUT.format(flow=flow))
    return msgspec.json.decode(text, type=Layout) if text else None


def write_layout(store: Store, flow: str, layout: Layout) -> None:
    with store.transaction() as tx:
        tx.set_checkpoint(LAYOUT.format(flow=flow), msgspec.json.encode(layout).decode())


def next_layout(previous: Layout | None, workers: int) -> Layout:
    """The layout for ``workers`` members after ``previous``: members beyond the new count, and the flow's single
    session the first time, join the sessions to retire."""
    retire = {PLAIN} if previous is None else set(previous.retire)
    if previous is not None:
        retire |= {f"w{index}" for index in range(workers, previous.workers)}
    retire -= {f"w{index}" for index in range(workers)}
    return Layout(workers=workers, retire=sorted(retire))


def mqtt_flows(runtime: Runtime, names: Sequence[str]) -> list[str]:
    estate = runtime.estate
    return [name for name in names if name in estate.flows and estate.flows[name].direction == "inbound"
            and estate.systems[estate.flows[name].system].kind == "mqtt"]


def listener_for(runtime: Runtime, names: Sequence[str], workers: int | None, *,
                 on_event: Callable[[str], None] | None = None) -> Listener | ListenWorkers:
    """What runs ``names``: with ``workers``, their MQTT flows in that many processes each (the others in this
    process); without, the MQTT flows with a recorded layout in as many as recorded, and the rest in this process."""
    Listener(runtime, names)  # checks every name as a listener would
    candidates = mqtt_flows(runtime, names)
    if workers is not None:
        if not candidates:
            raise ConfigError([f"--workers: none of {', '.join(names)} is an MQTT flow; webhook flows listen in "
                               "one process"])
        counts = dict.fromkeys(candidates, workers)
    else:
        counts = {}
        for name in candidates:
            layout = read_layout(runtime.store, name)
            if layout is not None:
                counts[name] = layout.workers
        if not counts:
            return Listener(runtime, names)
    return ListenWorkers(runtime, names, counts, on_event=on_event)


def worker_context(runtime: Runtime) -> Any:
    """Workers fork from a server process that imported the ingest path and the estate's connectors once
    (``forkserver``): each worker, and one started again after a crash, is up without importing them again, and
    none inherits this process's threads or store connections."""
    from syncfabric.connectors.registry import connector_class

    kinds = {system.kind for system in runtime.estate.systems.values()}
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([
        "syncfabric.flows.listen_workers", "syncfabric.flows.runtime", "syncfabric.config", "syncfabric.store.sqlite",
        "aiomqtt", *sorted({connector_class(kind).__module__ for kind in kinds}),
    ])
    return context


@dataclass
class _Member:
    flow: str
    name: str
    """``w<i>`` for a worker, ``plain`` or ``w<i>`` for a session being retired."""
    retiring: bool
    process: BaseProcess | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    delay: float = 0.5
    restart_at: float = 0.0
    restarts: int = 0


class ListenWorkers:
    """Runs MQTT flows in worker processes (and the other flows named in an inner :class:`Listener`); the same
    interface as :class:`Listener` for ``syncfabric listen``: ``start``, ``stop``, ``join``, ``wait``, ``results``,
    ``errors``. One run per flow in the run history, with the totals of all its workers."""

    def __init__(self, runtime: Runtime, names: Sequence[str], workers: dict[str, int], *,
                 max_wait: float = MAX_WAIT, on_event: Callable[[str], None] | None = None) -> None:
        self.runtime = runtime
        self.names = list(names)
        self.workers = dict(workers)
        self.max_wait = max_wait
        self.on_event = on_event or (lambda line: None)
        self.stop_event = threading.Event()
        others = [name for name in names if name not in workers]
        self.inner = Listener(runtime, others, max_wait=max_wait) if others else None
        self.errors: dict[str, BaseException] = {}
        self._results: dict[str, ListenResult] = {}
        self._snapshots: dict[tuple[str, str, int], tuple[Any, ...]] = {}
        self._members: list[_Member] = []
        self._runs: dict[str, int] = {}
        self._layouts: dict[str, Layout] = {}
        self._context = worker_context(runtime)
        self._reports: Any = self._context.Queue()
        self._supervisor = threading.Thread(target=self._supervise, name="listen-workers", daemon=True)
        self._lock = threading.Lock()

    @property
    def results(self) -> dict[str, ListenResult]:
        inner = self.inner.results if self.inner is not None else {}
        return {**inner, **self._results}

    def start(self) -> None:
        """Start every worker (and session retirement); returns once each worker is subscribed."""
        store = self.runtime.store
        for flow, count in self.workers.items():
            layout = next_layout(read_layout(store, flow), count)
            write_layout(store, flow, layout)
            self._layouts[flow] = layout
            self._runs[flow] = store.start_run(flow)
            self._results[flow] = ListenResult(flow=flow, direction="inbound")
            self._members += [_Member(flow, f"w{index}", retiring=False) for index in range(count)]
            self._members += [_Member(flow, name, retiring=True) for name in layout.retire]
        for member in self._members:
            self._spawn(member)
        self._supervisor.start()
        deadline = time.monotonic() + READY_TIMEOUT
        for member in self._members:
            if member.retiring:
                continue
            while not member.ready.wait(0.1):
                if self.errors or time.monotonic() > deadline:
                    break
        if not self.errors and not all(m.ready.is_set() for m in self._members if not m.retiring):
            self.errors["workers"] = PermanentError(f"workers not subscribed within {READY_TIMEOUT:.0f} s")
        if not self.errors and self.inner is not None:
            try:
                self.inner.start()
            except BaseException as exc:
                self.errors[self.inner.names[0]] = exc
        if self.errors:
            self.stop()
            self.join()
            raise next(iter(self.errors.values()))

    def _spawn(self, member: _Member) -> None:
        loaded = self.runtime.loaded
        process = self._context.Process(
            target=run_worker, name=f"listen-{member.flow}-{member.name}", daemon=True,
            args=(str(loaded.path.resolve()), dict(loaded.environ), member.flow, member.name, member.retiring,
                  f"listen-{self._runs[member.flow]}/{member.name}", self.max_wait, self._reports, os.getpid()))
        process.start()
        member.process = process
        what = "retiring session" if member.retiring else "worker"
        self.on_event(f"{what} {member.flow} {member.name}: pid {process.pid}")

    def _supervise(self) -> None:
        while not self.stop_event.is_set():
            self._take_reports(0.1)
            now = time.monotonic()
            with self._lock:
                for member in self._members:
                    if member.done or member.process is None or self.stop_event.is_set():
                        continue
                    if member.process.is_alive():
                        continue
                    if member.restart_at == 0.0:
                        self._exited(member, now)
                    elif now >= member.restart_at:
                        member.restart_at = 0.0
                        member.restarts += 1
                        self._spawn(member)

    def _exited(self, member: _Member, now: float) -> None:
        assert member.process is not None
        code = member.process.exitcode
        if code == 0 and member.retiring:
            member.done = True
            return
        if code == EXIT_PERMANENT:
            member.done = True  # its report failed the flow
            return
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        self.on_event(f"worker {member.flow} {member.name} ({how}); starting it again in {member.delay:.1f} s")
        member.restart_at = now + member.delay
        member.delay = min(member.delay * 2, RESTART_MAX_SECONDS)

    def _take_reports(self, timeout: float) -> None:
        try:
            report = self._reports.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._handle(*report)
            try:
                report = self._reports.get_nowait()
            except queue.Empty:
                return

    def _handle(self, kind: str, flow: str, name: str, pid: int, body: Any) -> None:
        member = next(m for m in self._members if m.flow == flow and m.name == name)
        if kind == "ready":
            member.ready.set()
            member.delay = 0.5
        elif kind == "batch":
            self._snapshots[(flow, name, pid)] = body
            self._results[flow] = self._total(flow)
        elif kind == "retired":
            layout = self._layouts[flow]
            layout = Layout(workers=layout.workers, retire=[n for n in layout.retire if n != name])
            self._layouts[flow] = layout
            write_layout(self.runtime.store, flow, layout)
            self.on_event(f"retired session {flow} {name}")
        elif kind == "failed":
            self.errors[flow] = PermanentError(f"flow {flow}, {name}: {body}")
            self.stop_event.set()

    def _total(self, flow: str) -> ListenResult:
        total = ListenResult(flow=flow, direction="inbound")
        for (of, _, _), counts in self._snapshots.items():
            if of != flow:
                continue
            received, inserted, updated, unchanged, quarantined, batches, superseded, last = counts
            total.received += received
            total.records_in += received
            total.inserted += inserted
            total.updated += updated
            total.unchanged += unchanged
            total.quarantined += quarantined
            total.batches += batches
            total.superseded += superseded
            total.last_location = total.checkpoint = last or total.last_location
        return total

    def stop(self) -> None:
        self.stop_event.set()
        if self.inner is not None:
            self.inner.stop()

    def wait(self, timeout: float | None = None) -> bool:
        if self.inner is not None and self.inner.stop_event.is_set():
            self.stop_event.set()
        return self.stop_event.wait(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Stop the workers (SIGTERM: each commits and acknowledges its last batch) and record each flow's run."""
        self.stop_event.set()
        if self._supervisor.is_alive():
            self._supervisor.join()

        processes = [m.process for m in self._members if m.process is not None]
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + (timeout or 20.0)
        for process in processes:
            process.join(max(deadline - time.monotonic(), 0.1))
            if process.is_alive():
                process.kill()
                process.join()
        self._take_reports(0.2)

        if self.inner is not None:
            self.inner.join(timeout)
            self.errors.update(self.inner.errors)
        store = self.runtime.store
        for flow, run_id in self._runs.items():
            result = self._results[flow]
            error = self.errors.get(flow) or self.errors.get("workers")
            if error is not None:
                store.finish_run(run_id, RunStatus.FAILED, records_in=result.received, quarantined=result.quarantined,
                                 detail={"error": str(error), **result.detail()})
            else:
                store.finish_run(run_id, RunStatus.SUCCEEDED, records_in=result.received,
                                 unchanged=result.unchanged, quarantined=result.quarantined,
                                 detail={**result.detail(), "workers": self.workers[flow]})
        self._runs.clear()


class _UntilQuiet(Iterator[Sequence[Received]]):
    """A subscription that ends once nothing arrived for ``quiet`` seconds (a retiring session is empty)."""

    def __init__(self, subscription: Any, quiet: float) -> None:
        self.subscription = subscription
        self.quiet = quiet
        self._last = time.monotonic()

    def __next__(self) -> Sequence[Received]:
        batch = next(self.subscription)
        now = time.monotonic()
        if batch:
            self._last = now
        elif now - self._last >= self.quiet:
            raise StopIteration
        return batch

    def close(self) -> None:
        self.subscription.close()


def run_worker(path: str, environ: dict[str, str], flow: str, name: str, retiring: bool, batch_id: str,
               max_wait: float, reports: Any, parent: int) -> None:
    """A worker process: one session of ``flow`` (a member of its shared subscription, or a session being retired),
    ingesting until SIGTERM; reports its totals after each batch."""
    from syncfabric.config import load_estate
    from syncfabric.errors import ConnectorError
    from syncfabric.flows.runtime import Runtime

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent stops us
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=_stop_when_orphaned, args=(stop, parent), name="orphan-watch", daemon=True).start()
    pid = os.getpid()
    try:
        with Runtime(load_estate(path, environ)) as runtime:
            spec = runtime.estate.flows[flow]
            assert spec.mapping is not None  # guaranteed by validation
            field_map = runtime.field_map(spec.mapping)
            connector: Any = runtime.connector(spec.system)
            connector.open()
            try:
                source = spec.source or spec.entities[0]
                group = connector.share_group(flow)
                durable = flow if name == PLAIN else f"{flow}-{name}"
                options = {"batch_size": spec.batch_size, "max_wait": max_wait, "poll": 0.2}
                if retiring:
                    subscription: Any = _UntilQuiet(connector.drain_shared(
                        source, group=None if name == PLAIN else group, durable=durable, **options), QUIET_SECONDS)
                else:
                    subscription = connector.subscribe_shared(source, group=group, durable=durable, **options)
                reports.put(("ready", flow, name, pid, None))

                def on_batch(result: ListenResult) -> None:
                    reports.put(("batch", flow, name, pid, (
                        result.received, result.inserted, result.updated, result.unchanged, result.quarantined,
                        result.batches, result.superseded, result.last_location)))

                listen_flow(runtime.store, flow, connector, field_map, source=source, stop=stop,
                            rules=runtime.rules(field_map.entity_cls.entity), batch_size=spec.batch_size,
                            max_wait=max_wait, batch_id=batch_id, on_batch=on_batch, subscription=subscription)
                if retiring and not stop.is_set():
                    connector.end_session(durable)
                    reports.put(("retired", flow, name, pid, None))
            finally:
                connector.close()
    except (ConfigError, PermanentError) as exc:
        reports.put(("failed", flow, name, pid, str(exc)))
        _flush(reports)
        sys.exit(EXIT_PERMANENT)
    except ConnectorError as exc:  # transient: the parent starts the worker again
        print(f"{flow} {name}: {exc}", file=sys.stderr)
        _flush(reports)
        sys.exit(1)
    _flush(reports)


def _stop_when_orphaned(stop: threading.Event, parent: int, every: float = 0.5) -> None:
    """Stop the worker once ``listen``'s process (``parent``) is gone, killed without a chance to stop it: a worker
    left running would fight the next ``listen``'s worker over its client id."""
    while not stop.wait(every):
        if not pid_alive(parent):
            stop.set()


def _flush(reports: Any) -> None:
    reports.close()
    reports.join_thread()
