"""Where a push source's own thread leaves received records for the flow's thread to take in batches.

A subscribing connector (MQTT, webhook) runs its protocol on an asyncio loop in a thread of its own; the flow
takes what arrived in small batches, commits each batch in one store transaction (one fsync for many records:
group commit), and only then acknowledges the batch's records to their source. Records that arrive together (the
events of one webhook request) are handed over as one item: one queue operation and one wake-up of the flow's
thread for all of them, which on a busy process is what the hand-over costs.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator, Sequence

from syncfabric.connectors.base import Received
from syncfabric.errors import ConnectorError


class Inbox:
    """A thread-safe queue of received records, taken in batches; a source failure is raised to the taker."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Received | list[Received] | ConnectorError] = queue.SimpleQueue()
        self._carry: list[Received] = []
        """What is left of a group larger than the last batch had room for (only the taker's thread touches it)."""

    def put(self, item: Received) -> None:
        self._queue.put(item)

    def put_many(self, items: Sequence[Received]) -> None:
        """Hand over records that arrived together, in order, as one item (taken across batches if need be)."""
        if items:
            self._queue.put(list(items))

    def fail(self, error: ConnectorError) -> None:
        """Hand a failure of the source to the taker: its next :meth:`take` raises it."""
        self._queue.put(error)

    def take(self, batch_size: int, max_wait: float, poll: float) -> list[Received]:
        """Up to ``batch_size`` records: waits ``poll`` seconds for a first one (none: ``[]``), then gathers
        what else arrives within ``max_wait`` seconds of it."""
        batch: list[Received] = []
        if self._carry:
            self._add(batch, self._carry, batch_size)
        else:
            try:
                first = self._queue.get(timeout=poll)
            except queue.Empty:
                return []
            if isinstance(first, ConnectorError):
                raise first
            self._add(batch, first, batch_size)
        deadline = time.monotonic() + max_wait
        while len(batch) < batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, ConnectorError):
                self._queue.put(item)  # raised by the next take, after this batch is committed
                break
            self._add(batch, item, batch_size)
        return batch

    def _add(self, batch: list[Received], item: Received | list[Received], batch_size: int) -> None:
        if not isinstance(item, list):
            batch.append(item)
            return
        room = batch_size - len(batch)
        batch.extend(item[:room])
        self._carry = item[room:]


class Subscription(Iterator[list[Received]]):
    """What :meth:`Connector.subscribe` returns: batches from an inbox until closed. Already subscribed when
    returned (so a caller knows the source now keeps what arrives); :meth:`close` ends the subscription."""

    def __init__(self, inbox: Inbox, *, batch_size: int, max_wait: float, poll: float,
                 on_close: Callable[[], None]) -> None:
        self.inbox = inbox
        self.batch_size, self.max_wait, self.poll = batch_size, max_wait, poll
        self._on_close: Callable[[], None] | None = on_close

    def __next__(self) -> list[Received]:
        if self._on_close is None:
            raise StopIteration
        return self.inbox.take(self.batch_size, self.max_wait, self.poll)

    def close(self) -> None:
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
