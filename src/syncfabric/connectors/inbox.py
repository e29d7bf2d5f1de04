"""Where a push source's own thread leaves received records for the flow's thread to take in batches.

A subscribing connector (MQTT, webhook) runs its protocol on an asyncio loop in a thread of its own; the flow
takes what arrived in small batches, commits each batch in one store transaction (one fsync for many records:
group commit), and only then acknowledges the batch's records to their source. Records that arrive together (the
events of one webhook request: one :class:`Received`; MQTT messages read in one wake-up: several) are handed over
as one item: one queue operation and one wake-up of the flow's thread for all of them, which on a busy process is
what the hand-over costs.
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
        """What is left of an item larger than the last batch had room for, first the rest of a delivery taken in
        part (only the taker's thread touches it)."""

    def put(self, item: Received) -> None:
        self._queue.put(item)

    def put_many(self, items: Sequence[Received]) -> None:
        """Hand over deliveries that arrived together, in order, as one item (taken across batches if need be)."""
        if items:
            self._queue.put(list(items))

    def fail(self, error: ConnectorError) -> None:
        """Hand a failure of the source to the taker: its next :meth:`take` raises it."""
        self._queue.put(error)

    def take(self, batch_size: int, max_wait: float, poll: float) -> list[Received]:
        """Deliveries holding up to ``batch_size`` records in all: waits ``poll`` seconds for a first one (none:
        ``[]``), then gathers what else arrives within ``max_wait`` seconds of it. A delivery that does not fit is
        split: its first part ends the batch, the rest starts the next one."""
        batch: list[Received] = []
        if self._carry:
            carry, self._carry = self._carry, []
            room = self._add(batch, carry, batch_size)
        else:
            try:
                first = self._queue.get(timeout=poll)
            except queue.Empty:
                return []
            if isinstance(first, ConnectorError):
                raise first
            room = self._add(batch, first, batch_size)
        deadline = time.monotonic() + max_wait
        while room > 0:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, ConnectorError):
                self._queue.put(item)  # raised by the next take, after this batch is committed
                break
            room = self._add(batch, item, room)
        return batch

    def _add(self, batch: list[Received], item: Received | list[Received], room: int) -> int:
        """Add to ``batch`` what fits of ``item`` in ``room`` records, keep the rest for the next batch; the room
        left."""
        items = item if isinstance(item, list) else (item,)
        for number, received in enumerate(items):
            size = len(received.rows)
            if size > room:
                rest = list(items[number:])
                if room:
                    batch.append(received.part(0, room))
                    rest[0] = received.part(room, size)
                self._carry = rest
                return 0
            batch.append(received)
            room -= size
        return room


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
