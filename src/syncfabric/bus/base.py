"""The bus's interface: fan the store's change log out to durable consumers.

One interface, two implementations chosen by URL through :func:`syncfabric.bus.open_bus`:

- ``embedded`` (no URL): consumers read the store's change log directly, each from its own checkpoints;
- ``nats://host:port``: a relay publishes the change log (the transactional outbox) to a NATS JetStream stream, and
  consumers are JetStream durable pull consumers, so that worker processes on many machines share the work.

Both pass one conformance suite (``tests/bus``).

Per-key order with many workers comes from partitions: every change goes to partition ``hash(entity, key) % N``; a
consumer name has one cursor per partition, and a worker reads a partition only while it holds that partition's lease
in the store. Workers of one consumer name split the partitions between them (each takes its fair share, gives the
surplus back when another worker joins, takes over a dead worker's partitions when its lease expires). A worker has
at most one unacknowledged batch per partition, so two changes of one key are never in flight at once.

Delivery is at least once: a batch not acknowledged (the worker died, or closed without acking) is delivered again,
in order, to whichever worker reads the partition next. Targets are written idempotently by (entity, key, version).
"""

from __future__ import annotations

import datetime as dt
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import msgspec

from syncfabric.store import Change, Lineage, Op, Store


class Message(msgspec.Struct, frozen=True, gc=False):
    """One canonical change as a consumer receives it: the change-log entry, and where it is on the bus (a msgspec
    Struct: one is built per change fetched; untracked by the garbage collector, as :class:`Change` is)."""

    change: Change
    position: int
    """Where the message is on the bus, for :meth:`Bus.replay`: the change-log sequence (embedded) or the stream
    sequence (NATS)."""
    deliveries: int = 1
    """1 the first time; more when it is delivered again after a batch was not acknowledged (NATS)."""

    @property
    def seq(self) -> int:
        """The change-log sequence of the change in the store."""
        return self.change.seq

    @property
    def entity(self) -> str:
        return self.change.entity

    @property
    def key(self) -> str:
        return self.change.key

    @property
    def version(self) -> int:
        return self.change.version

    @property
    def op(self) -> Op:
        return self.change.op

    @property
    def content_hash(self) -> str:
        return self.change.content_hash

    @property
    def payload(self) -> bytes | None:
        return self.change.payload

    @property
    def recorded_at(self) -> dt.datetime:
        return self.change.recorded_at

    @property
    def lineage(self) -> Lineage:
        return self.change.lineage

    @property
    def message_id(self) -> str:
        """What identifies the change everywhere: ``<entity>:<key>:<version>``; a target that saw it skips it."""
        return message_id(self.change.entity, self.change.key, self.change.version)


def message_id(entity: str, key: str, version: int) -> str:
    return f"{entity}:{key}:{version}"


def partition_of(entity: str, key: str, partitions: int) -> int:
    """The partition of a key: stable across processes, releases and machines (CRC-32, not Python's hash)."""
    return zlib.crc32(f"{entity}\x00{key}".encode()) % partitions


class Batch:
    """Messages of one partition, oldest first. :meth:`ack` once they are processed; until then the partition
    delivers nothing newer. A batch never acknowledged is delivered again.

    ``store_checkpoints``: the store checkpoints acknowledging the batch writes (the embedded bus keeps its cursor
    there; empty for NATS). A consumer that commits them itself, in the transaction recording what it did with the
    batch, then calls ``ack(recorded=True)``, which writes them no second time: one commit per batch, not two."""

    def __init__(self, partition: int, messages: list[Message], on_ack: Callable[[], None], *,
                 store_checkpoints: dict[str, str] | None = None,
                 on_recorded: Callable[[], None] | None = None) -> None:
        self.partition = partition
        self.messages = messages
        self._on_ack = on_ack
        self.store_checkpoints = store_checkpoints or {}
        self._on_recorded = on_recorded or on_ack
        self.acked = False

    def __len__(self) -> int:
        return len(self.messages)

    def __iter__(self) -> Iterator[Message]:
        return iter(self.messages)

    def ack(self, *, recorded: bool = False) -> None:
        """Acknowledge the batch; ``recorded``: the caller has committed :attr:`store_checkpoints` itself."""
        if not self.acked:
            (self._on_recorded if recorded else self._on_ack)()
            self.acked = True


@dataclass(frozen=True, slots=True)
class ConsumerStatus:
    """How far one consumer name is behind the change log."""

    consumer: str
    partitions: int
    pending: int
    """Changes not yet delivered."""
    unacked: int
    """Changes delivered but not acknowledged."""
    workers: list[str]
    """Workers holding partitions now."""


@dataclass(frozen=True, slots=True)
class BusStatus:
    kind: str
    head: int
    """The newest change-log sequence in the store."""
    published: int | None
    """The newest change-log sequence the relay has published (None: the bus reads the store itself)."""
    relay: str | None
    """The process holding the relay lease, if any."""
    consumers: list[ConsumerStatus]


class Subscription(ABC):
    """One worker's membership in a durable consumer name."""

    consumer: str
    worker: str

    @abstractmethod
    def fetch(self, max_messages: int = 500, timeout: float = 1.0) -> Batch | None:
        """The next batch of one of this worker's partitions, waiting up to ``timeout`` seconds; None if none."""

    @abstractmethod
    def partitions(self) -> list[int]:
        """The partitions this worker holds now."""

    @abstractmethod
    def rebalance(self) -> list[int]:
        """Renew the leases and take or give back partitions now (``fetch`` does it by itself every third of the
        lease); the partitions held afterwards."""

    @abstractmethod
    def acknowledged_through(self) -> dict[int, int]:
        """Per partition held, a change-log sequence up to which every change of the partition is acknowledged (a
        lower bound: partitions it knows nothing about yet are left out). What a consumer that also keeps its own
        mark in the store (a streaming flow's checkpoint) moves that mark by."""

    @abstractmethod
    def close(self) -> None:
        """Leave the consumer: give the partitions back. Unacknowledged batches are delivered again to another."""

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Bus(ABC):
    kind: str
    store: Store
    """The store whose change log the bus fans out."""
    partitions: int
    outbox: str
    """What the relay publishes to (names its checkpoint and lease): ``embedded`` or the JetStream stream name."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The bus URL with every option, so that another process (a worker, the relay) opens the same bus."""

    @abstractmethod
    def publish(self, changes: Sequence[Change]) -> int:
        """Put changes on the bus, in order; returns how many were new (a re-published change is not new). Returns
        when the bus has them durably. The embedded bus is the change log itself: nothing to do."""

    @abstractmethod
    def subscribe(self, consumer: str, *, entities: Sequence[str] | None = None, worker: str | None = None,
                  start: int | dt.datetime | None = None) -> Subscription:
        """Join the durable consumer ``consumer`` as one of its workers. A consumer name is created on first use,
        reading from the bus position ``start`` (an int position or a time), by default from the beginning;
        afterwards it resumes where it was acknowledged and ``start`` is ignored."""

    @abstractmethod
    def replay(self, start: int | dt.datetime, *, entities: Sequence[str] | None = None) -> Iterator[Message]:
        """Every message from a bus position (see :attr:`Message.position`) or from a time up to now, in bus order,
        without touching any consumer's progress."""

    def replay_changes(self, seq: int, *, entities: Sequence[str] | None = None) -> Iterator[Message]:
        """Every message of a change with change-log sequence ``seq`` or later, in bus order: replay from the time
        that change was recorded, keeping the changes from ``seq`` on."""
        first = self.store.changes(seq - 1, limit=1)
        if first:
            yield from (m for m in self.replay(first[0].recorded_at, entities=entities) if m.seq >= seq)

    @abstractmethod
    def status(self) -> BusStatus: ...

    @abstractmethod
    def delete_consumer(self, consumer: str) -> None:
        """Forget a consumer name and its progress."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
