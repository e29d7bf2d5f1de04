"""The embedded bus: consumers read the store's change log directly, from their own checkpoints.

No second copy of the data and nothing to run: the change log is the bus, its sequence is the bus position. A
consumer name keeps one checkpoint per partition (``bus:<consumer>:<partition>``, the last acknowledged sequence),
moved when a batch is acknowledged. The default is one partition; more let several processes share the work (a
worker holding several reads each page of the log once, and hands each partition its changes).
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
from collections.abc import Iterator, Sequence

from syncfabric.bus.base import Batch, Bus, BusStatus, ConsumerStatus, Message, Subscription, partition_of
from syncfabric.bus.partitions import PartitionedSubscription, check_consumer_name, default_worker_id
from syncfabric.errors import ConfigError
from syncfabric.store import Change, Store

REGISTRY = "bus:consumers"
"""The checkpoint listing the consumer names (JSON), for ``bus status``."""
SCAN = 1000
"""Change-log entries read per query while looking for one partition's changes."""
SCAN_PAGES = 20
"""Queries one fetch makes at most for one partition."""
WINDOW = SCAN_PAGES * SCAN
"""Changes a worker holding several partitions keeps from its last reads, so that each is read from the store once."""


def checkpoint_name(consumer: str, partition: int) -> str:
    return f"bus:{consumer}:{partition}"


def seq_at(store: Store, when: dt.datetime) -> int:
    """The first change-log sequence recorded at or after ``when`` (head + 1 if none): a binary search over the log,
    which is in commit order and so in recording-time order."""
    lo, hi = 0, store.head()  # invariant: every seq <= lo is before `when`; the answer is in (lo, hi + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        first = store.changes(mid, limit=1)
        if not first:
            break
        if first[0].recorded_at < when:
            lo = first[0].seq
        else:
            hi = mid
    following = store.changes(lo, limit=1)
    return following[0].seq if following else store.head() + 1


class EmbeddedBus(Bus):
    kind = "embedded"
    outbox = "embedded"

    def __init__(self, store: Store, *, partitions: int = 1, lease_seconds: float = 15.0,
                 poll_interval: float = 0.05) -> None:
        self.store = store
        self.partitions = partitions
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval

    @property
    def url(self) -> str:
        return f"embedded://?partitions={self.partitions}&lease_seconds={self.lease_seconds}"

    def publish(self, changes: Sequence[Change]) -> int:
        return 0  # the change log is the bus: consumers read it as soon as the transaction commits

    def subscribe(self, consumer: str, *, entities: Sequence[str] | None = None, worker: str | None = None,
                  start: int | dt.datetime | None = None) -> Subscription:
        check_consumer_name(consumer)
        self._register(consumer, start)
        return EmbeddedSubscription(self, consumer, worker or default_worker_id(), entities)

    def _consumers(self) -> list[str]:
        return list(json.loads(self.store.checkpoint(REGISTRY) or "[]"))

    def _register(self, consumer: str, start: int | dt.datetime | None) -> None:
        if self.store.checkpoint(checkpoint_name(consumer, 0)):  # '' once deleted
            made = self.store.checkpoint(f"bus:{consumer}:partitions") or "1"
            if int(made) != self.partitions:
                raise ConfigError([f"bus consumer {consumer!r} keeps its progress in {made} partitions, not "
                                   f"{self.partitions}: use partitions={made}, or delete the consumer to start over"])
            return
        after = 0
        if isinstance(start, dt.datetime):
            after = seq_at(self.store, start) - 1
        elif start is not None:
            after = max(start - 1, 0)
        with self.store.transaction() as tx:
            for partition in range(self.partitions):
                tx.set_checkpoint(checkpoint_name(consumer, partition), str(after))
            tx.set_checkpoint(f"bus:{consumer}:partitions", str(self.partitions))
            tx.set_checkpoint(REGISTRY, json.dumps(sorted({*self._consumers(), consumer})))

    def replay(self, start: int | dt.datetime, *, entities: Sequence[str] | None = None) -> Iterator[Message]:
        after = (seq_at(self.store, start) if isinstance(start, dt.datetime) else start) - 1
        while page := self.store.changes(after, entities=entities, limit=SCAN):
            for change in page:
                yield Message(change, change.seq)
            after = page[-1].seq

    def replay_changes(self, seq: int, *, entities: Sequence[str] | None = None) -> Iterator[Message]:
        return self.replay(max(seq, 1), entities=entities)  # positions are change-log sequences

    def status(self) -> BusStatus:
        head = self.store.head()
        consumers = []
        for consumer in self._consumers():
            marks = [int(self.store.checkpoint(checkpoint_name(consumer, p)) or 0) for p in range(self.partitions)]
            workers = sorted(set(self.store.leases(f"bus:{consumer}:partition:").values()))
            consumers.append(ConsumerStatus(consumer, self.partitions, max(head - min(marks), 0), 0, workers))
        return BusStatus(self.kind, head, None, None, consumers)

    def delete_consumer(self, consumer: str) -> None:
        with self.store.transaction() as tx:
            for partition in range(self.partitions):
                tx.set_checkpoint(checkpoint_name(consumer, partition), "")
            tx.set_checkpoint(REGISTRY, json.dumps([c for c in self._consumers() if c != consumer]))

    def close(self) -> None:
        pass  # the store belongs to the caller


class EmbeddedSubscription(PartitionedSubscription):
    def __init__(self, bus: EmbeddedBus, consumer: str, worker: str, entities: Sequence[str] | None) -> None:
        self.bus = bus
        self.entities = list(entities) if entities is not None else None
        self.poll_interval = bus.poll_interval
        self._cursor: dict[int, int] = {}
        """Per held partition: the last sequence read (delivered or skipped)."""
        self._acked: dict[int, int] = {}
        """Per held partition: its checkpoint, the last sequence acknowledged."""
        self._window: list[Change] = []
        self._window_after = 0
        """The last changes read from the store (contiguous), and the sequence they were read after."""
        self._window_ended = False
        """Whether that page reached the end of the log."""
        super().__init__(bus.store, consumer, worker, bus.partitions, bus.lease_seconds)

    def _acquired(self, partition: int) -> None:
        acked = int(self.bus.store.checkpoint(checkpoint_name(self.consumer, partition)) or 0)
        self._cursor[partition] = self._acked[partition] = acked

    def _released(self, partition: int) -> None:
        self._cursor.pop(partition, None)
        self._acked.pop(partition, None)

    def _read(self, partition: int, max_messages: int, wait: float) -> Batch | None:
        store, partitions = self.bus.store, self.bus.partitions
        after = self._cursor[partition]
        found: list[Message] = []
        if partitions == 1:  # every change is the partition's: one read of the batch, its messages in one go
            page = store.changes(after, entities=self.entities, limit=max_messages)
            found = [Message(change, change.seq) for change in page]
            if page:
                after = page[-1].seq
        else:
            for _ in range(SCAN_PAGES):  # bounded, so that a fetch renews its leases in time even on a long backlog
                page, ended = self._page(after, SCAN)
                for change in page:
                    after = change.seq
                    if partition_of(change.entity, change.key, partitions) == partition:
                        found.append(Message(change, change.seq))
                        if len(found) == max_messages:
                            break
                if ended or len(found) == max_messages:
                    break
        self._cursor[partition] = after
        if not found:
            if after > self._acked[partition]:  # only other partitions' changes: move on, so the lag reads true
                self._ack(partition, after)
            return None
        return self._batch(partition, found, lambda: self._ack(partition, after),
                           store_checkpoints={checkpoint_name(self.consumer, partition): str(after)},
                           recorded=lambda: self._acked.__setitem__(partition, after))

    def _page(self, after: int, limit: int) -> tuple[list[Change], bool]:
        """The changes after ``after``, and whether they reach the end of the log. From the last page read when it
        covers them: the partitions of one worker move through the log together, so each page is read from the store
        once, not once per partition."""
        window = self._window
        if window and self._window_after <= after < window[-1].seq:
            start = bisect.bisect_right(window, after, key=lambda change: change.seq)
            return window[start:], self._window_ended
        page = self.bus.store.changes(after, entities=self.entities, limit=limit)
        if window and after == window[-1].seq:  # the log read on: keep the pages the other partitions still need
            window.extend(page)
            if len(window) > WINDOW:
                self._window_after = window[-WINDOW - 1].seq
                del window[:-WINDOW]
        else:
            self._window, self._window_after = page, after
        self._window_ended = len(page) < limit
        return page, len(page) < limit

    def acknowledged_through(self) -> dict[int, int]:
        return dict(self._acked)  # the partition checkpoints are change-log sequences, skipped changes included

    def _ack(self, partition: int, upto: int) -> None:
        with self.bus.store.transaction() as tx:
            tx.set_checkpoint(checkpoint_name(self.consumer, partition), str(upto))
        self._acked[partition] = upto
