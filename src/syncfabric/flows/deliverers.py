"""Continuous delivery of outbound flows in threads of this process: what ``syncfabric deliver`` runs, and what
``syncfabric listen --deliver`` runs next to its subscriptions.

One :class:`~syncfabric.flows.stream.StreamConsumer` per flow, each in a thread of its own, with everything it
guarantees (checkpoint after the target confirmed, dead letters, retries, fallback). In the process that commits
the changes (a listener), a commit wakes the consumers at once (:meth:`~syncfabric.store.Store.wait_for_changes`):
no polling interval between an event's commit and its delivery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING

from syncfabric.connectors.base import Connector
from syncfabric.errors import ConfigError
from syncfabric.flows.stream import StreamConsumer, consumer_for

if TYPE_CHECKING:
    from syncfabric.flows.runtime import Runtime

log = logging.getLogger(__name__)

STOP_TIMEOUT = 60.0
"""How long :meth:`Deliverers.join` waits for the consumers to end their sessions. Every wait of a consumer ends
when it is told to stop; what can outlast that is a request to the target already on the wire (bounded by the
connector's timeout, 30 s by default) and the commit of its outcome."""


def streaming_flows(runtime: Runtime) -> list[str]:
    """The estate's flows that stream: outbound, in mode changes, in the estate's order."""
    return [name for name, flow in runtime.estate.flows.items()
            if flow.direction == "outbound" and flow.mode == "changes"]


def check_streaming(runtime: Runtime, names: Sequence[str], option: str = "") -> None:
    """Refuse, naming each, flows that are unknown or do not stream (inbound, or outbound in another mode)."""
    where = f"{option}: " if option else ""
    flows = runtime.estate.flows
    streaming = streaming_flows(runtime)
    problems = []
    for name in names:
        flow = flows.get(name)
        if flow is None:
            problems.append(f"{where}unknown flow {name!r}; flows that stream: {', '.join(streaming) or 'none'}")
        elif flow.direction != "outbound":
            problems.append(f"{where}flow {name!r} is inbound, not an outbound flow in mode changes: only those "
                            f"stream (flows that stream: {', '.join(streaming) or 'none'})")
        elif flow.mode != "changes":
            problems.append(f"{where}flow {name!r} is outbound in mode {flow.mode}; only mode changes streams "
                            f"(run it with `syncfabric sync {name}`)")
    if problems:
        raise ConfigError(problems)


class Deliverers:
    """The consumers of outbound flows, one thread each, until stopped (or, with ``until_idle``, caught up).

    ``connectors`` gives the connector of a flow instead of the estate's (already open; closed by its owner)."""

    def __init__(self, runtime: Runtime, names: Sequence[str], *, until_idle: bool = False,
                 connectors: Mapping[str, Connector] | None = None, option: str = "") -> None:
        self.runtime = runtime
        self.names = list(dict.fromkeys(names))
        check_streaming(runtime, self.names, option)
        self.until_idle = until_idle
        self.stop_event = threading.Event()
        self.errors: list[BaseException] = []
        self.consumers: list[StreamConsumer] = []
        self._given = dict(connectors or {})
        self._stack = ExitStack()
        self._done: list[threading.Event] = []

    def start(self) -> None:
        """Open each flow's connector and start its consumer; a connector that does not open stops the others."""
        try:
            for name in self.names:
                connector = self._given.get(name)
                if connector is None:
                    system = self.runtime.estate.flows[name].system
                    connector = self._stack.enter_context(self.runtime.connector(system, name))
                self.consumers.append(consumer_for(self.runtime, name, connector))
        except BaseException:
            self._stack.close()
            raise
        for consumer in self.consumers:
            finished = threading.Event()
            self._done.append(finished)
            threading.Thread(target=self._run, args=(consumer, finished), name=f"deliver-{consumer.flow}",
                             daemon=True).start()

    def _run(self, consumer: StreamConsumer, finished: threading.Event) -> None:
        try:
            consumer.run(self.stop_event, until_idle=self.until_idle)
        except BaseException as exc:
            self.errors.append(exc)
            self.stop_event.set()
        finally:
            finished.set()

    def stop(self) -> None:
        self.stop_event.set()

    def finished(self) -> bool:
        """Whether every consumer has ended (stopped, caught up with ``until_idle``, or failed)."""
        return all(done.is_set() for done in self._done)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` for some consumer to end; True when all have."""
        waiting = [done for done in self._done if not done.is_set()]
        if waiting:
            waiting[0].wait(timeout)
        return self.finished()

    def join(self, timeout: float | None = STOP_TIMEOUT) -> bool:
        """Stop and wait up to ``timeout`` for every consumer to end its session, then close the connectors opened
        here; True when all ended. A consumer still running after that keeps its connector (it is logged): what it
        has not committed is delivered again at the next start. Events, not Thread.join: a join interrupted by
        Ctrl-C can report a live thread as ended, and the store would be closed under a consumer still ending its
        session."""
        self.stop()
        deadline = None if timeout is None else time.monotonic() + timeout
        for done in self._done:
            done.wait(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        if not self.finished():
            running = [c.flow for c, done in zip(self.consumers, self._done, strict=True) if not done.is_set()]
            log.warning("delivery of %s did not end within %g s of the stop; what it has not committed is "
                        "delivered again at the next start", ", ".join(running), timeout)
            return False
        self._stack.close()
        return True
