"""The transactional outbox relay: publish the store's change log to the bus, then move the relay's checkpoint.

The change log is the outbox: a change is recorded in the same transaction as the state it describes, so nothing
committed can be missed. The relay reads the changes after its checkpoint, publishes them (the bus deduplicates by
``<entity>:<key>:<version>``), and commits the checkpoint only after the bus acknowledged them: a relay killed
between the two republishes a batch the bus already has, which it drops. One relay publishes at a time: it holds a
lease in the store, renewed on every batch; another relay waits until the lease is released or expires.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from syncfabric.bus.base import Bus
from syncfabric.bus.partitions import default_worker_id
from syncfabric.errors import BusError, StoreError
from syncfabric.store import Store

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RelayCounts:
    read: int = 0
    """Changes read from the log and published."""
    new: int = 0
    """Of those, how many the bus did not have yet (the rest were duplicates of an interrupted run)."""
    checkpoint: int = 0
    head: int = 0
    errors: int = 0
    """Batches that failed (the bus or the store unreachable); each is tried again."""
    last_error: str = ""


class Relay:
    def __init__(self, store: Store, bus: Bus, *, holder: str | None = None, batch: int = 1000,
                 lease_seconds: float | None = None) -> None:
        self.store = store
        self.bus = bus
        self.holder = holder or default_worker_id()
        self.batch = batch
        self.lease_seconds = lease_seconds if lease_seconds is not None else getattr(bus, "lease_seconds", 15.0)
        self.counts = RelayCounts()

    @property
    def checkpoint_name(self) -> str:
        return f"bus:relay:{self.bus.outbox}"

    @property
    def lease_name(self) -> str:
        return f"bus:relay:{self.bus.outbox}"

    def holds_lease(self) -> bool:
        """Take or renew the relay lease; whether this relay may publish now."""
        return self.store.acquire_lease(self.lease_name, self.holder, self.lease_seconds)

    def release(self) -> None:
        self.store.release_lease(self.lease_name, self.holder)

    def step(self) -> int:
        """Publish one batch after the checkpoint (the lease must be held); how many changes it read."""
        after = int(self.store.checkpoint(self.checkpoint_name) or 0)
        changes = self.store.changes(after, limit=self.batch)
        if changes:
            self.counts.new += self.bus.publish(changes)
            # The relay lease is the only writer of this checkpoint; it moves after the bus acknowledged the batch.
            with self.store.transaction() as tx:
                tx.set_checkpoint(self.checkpoint_name, str(changes[-1].seq))
            self.counts.read += len(changes)
            after = changes[-1].seq
        self.counts.checkpoint = after
        return len(changes)

    def catch_up(self) -> RelayCounts:
        """Publish everything recorded so far; BusError if another relay holds the lease."""
        while True:
            if not self.holds_lease():
                holder = self.store.leases(self.lease_name).get(self.lease_name, "another process")
                raise BusError(f"the relay lease {self.lease_name!r} is held by {holder}")
            if self.step() < self.batch:
                break
        self.counts.head = self.store.head()
        return self.counts

    def run(self, stop: threading.Event, *, idle: float = 0.2,
            progress: Callable[[RelayCounts, bool], None] | None = None) -> RelayCounts:
        """Relay until ``stop`` is set: wait for the lease, then publish as changes are recorded."""
        pause = idle
        try:
            while not stop.is_set():
                try:
                    leader = self.holds_lease()
                    read = self.step() if leader else 0
                    self.counts.head = self.store.head()
                    pause = idle
                except (BusError, StoreError) as exc:  # an outage pauses the relay; the batch is tried again
                    log.warning("relay: %s; trying again in %.1f s", exc, pause)
                    self.counts.errors += 1
                    self.counts.last_error = str(exc)
                    if progress is not None:
                        progress(self.counts, False)
                    stop.wait(pause)
                    pause = min(pause * 2, 10.0)
                    continue
                if progress is not None:
                    progress(self.counts, leader)
                if read < self.batch:
                    stop.wait(idle if leader else min(self.lease_seconds / 3, 1.0))
        finally:
            with contextlib.suppress(StoreError):
                self.release()
        return self.counts

