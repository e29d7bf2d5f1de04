"""Which partitions of a consumer name a worker reads: leases in the store, shared out fairly.

Every worker of a consumer name holds a membership lease (``bus:<consumer>:worker:<id>``) and leases on the
partitions it reads (``bus:<consumer>:partition:<n>``), renewed as it fetches. Its fair share is
``ceil(partitions / live workers)``: a worker above its share gives back idle partitions (no batch in flight), one
below takes free ones. A worker that dies stops renewing; its leases expire and the others take its partitions.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import socket
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable

from syncfabric.bus.base import Batch, Message, Subscription
from syncfabric.errors import ConfigError
from syncfabric.store import Store

NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


RESERVED = ("relay", "consumers")
"""Names the bus uses itself in the store's checkpoints and leases (``bus:relay:...``, ``bus:consumers``)."""


def check_consumer_name(consumer: str) -> str:
    if not NAME.match(consumer):
        raise ConfigError([f"bus consumer name {consumer!r}: use 1-100 letters, digits, '_' or '-'"])
    if consumer in RESERVED:
        raise ConfigError([f"bus consumer name {consumer!r} is reserved; choose another"])
    return consumer


def default_worker_id() -> str:
    """Unique per subscription, readable in ``bus status``: host, process id and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Assignment:
    """One worker's partitions of one consumer name."""

    def __init__(self, store: Store, consumer: str, worker: str, partitions: int, lease_seconds: float, *,
                 busy: Callable[[int], bool], on_acquire: Callable[[int], None],
                 on_release: Callable[[int], None]) -> None:
        self.store = store
        self.consumer = consumer
        self.worker = worker
        self.partitions = partitions
        self.lease_seconds = lease_seconds
        self._busy = busy
        self._on_acquire = on_acquire
        self._on_release = on_release
        self.held: list[int] = []
        self._refreshed = -math.inf

    def partition_lease(self, partition: int) -> str:
        return f"bus:{self.consumer}:partition:{partition}"

    @property
    def member_lease(self) -> str:
        return f"bus:{self.consumer}:worker:{self.worker}"

    def refresh(self, *, force: bool = False) -> list[int]:
        """Renew the leases (at most every third of their length unless forced) and rebalance; the held partitions."""
        now = time.monotonic()
        if not force and now - self._refreshed < self.lease_seconds / 3:
            return self.held
        self._refreshed = now
        store, seconds = self.store, self.lease_seconds
        store.acquire_lease(self.member_lease, self.worker, seconds)
        for partition in list(self.held):
            if not store.acquire_lease(self.partition_lease(partition), self.worker, seconds):
                self._drop(partition)  # expired and taken by another worker: its batches are delivered again there
        workers = max(len(store.leases(f"bus:{self.consumer}:worker:")), 1)
        share = math.ceil(self.partitions / workers)
        for partition in sorted(self.held, reverse=True):
            if len(self.held) <= share:
                break
            if not self._busy(partition):
                self._drop(partition)
                store.release_lease(self.partition_lease(partition), self.worker)
        if len(self.held) < share:
            taken = store.leases(f"bus:{self.consumer}:partition:")
            for partition in range(self.partitions):
                if len(self.held) >= share:
                    break
                if self.partition_lease(partition) in taken or partition in self.held:
                    continue
                if store.acquire_lease(self.partition_lease(partition), self.worker, seconds):
                    try:
                        self._on_acquire(partition)
                    except BaseException:
                        store.release_lease(self.partition_lease(partition), self.worker)
                        raise
                    self.held.append(partition)
                    self.held.sort()
        return self.held

    def _drop(self, partition: int) -> None:
        self.held.remove(partition)
        self._on_release(partition)

    def close(self) -> None:
        for partition in list(self.held):
            self._drop(partition)
            self.store.release_lease(self.partition_lease(partition), self.worker)
        self.store.release_lease(self.member_lease, self.worker)


class PartitionedSubscription(Subscription):
    """What the subscriptions of both buses share: leased partitions, at most one batch in flight per partition,
    partitions read in turn. A subclass reads one partition (``_read``) and follows its partitions coming and going
    (``_acquired``, ``_released``); it sets its own fields before calling ``__init__``, which takes partitions."""

    poll_interval = 0.05

    def __init__(self, store: Store, consumer: str, worker: str, partitions: int, lease_seconds: float) -> None:
        self.consumer = consumer
        self.worker = worker
        self._in_flight: set[int] = set()
        self._rotation = itertools.count()
        self._assignment = Assignment(
            store, consumer, worker, partitions, lease_seconds,
            busy=self._in_flight.__contains__, on_acquire=self._acquired, on_release=self._dropped,
        )
        self._assignment.refresh(force=True)

    @abstractmethod
    def _acquired(self, partition: int) -> None: ...

    @abstractmethod
    def _released(self, partition: int) -> None: ...

    @abstractmethod
    def _read(self, partition: int, max_messages: int, wait: float) -> Batch | None:
        """The next batch of one partition, waiting up to ``wait`` seconds if the bus can wait; None if none."""

    def _dropped(self, partition: int) -> None:
        self._in_flight.discard(partition)
        self._released(partition)

    def _batch(self, partition: int, messages: list[Message], ack: Callable[[], None], *,
               store_checkpoints: dict[str, str] | None = None,
               recorded: Callable[[], None] | None = None) -> Batch:
        """A batch that keeps its partition busy until acknowledged (``recorded``: what acknowledging does when the
        consumer committed ``store_checkpoints`` itself)."""
        self._in_flight.add(partition)

        def finish(step: Callable[[], None]) -> Callable[[], None]:
            def done() -> None:
                if partition in self._assignment.held:  # else the lease was lost: the new holder delivers it again
                    step()
                self._in_flight.discard(partition)
            return done

        return Batch(partition, messages, finish(ack), store_checkpoints=store_checkpoints,
                     on_recorded=finish(recorded or ack))

    def partitions(self) -> list[int]:
        return list(self._assignment.held)

    def rebalance(self) -> list[int]:
        return list(self._assignment.refresh(force=True))

    def fetch(self, max_messages: int = 500, timeout: float = 1.0) -> Batch | None:
        deadline = time.monotonic() + timeout
        while True:
            idle = [p for p in self._assignment.refresh() if p not in self._in_flight]
            if idle:
                turn = next(self._rotation) % len(idle)
                wait = max(min(deadline - time.monotonic(), timeout) / len(idle), 0.01)
                for partition in idle[turn:] + idle[:turn]:
                    batch = self._read(partition, max_messages, wait)
                    if batch is not None:
                        return batch
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(self.poll_interval, remaining))

    def close(self) -> None:
        self._assignment.close()
