"""The canonical store's interface: current state, change log, checkpoints, cross-reference, quarantine, runs.

One interface, several implementations (``sqlite``, ``postgres``) chosen by URL through
:func:`syncfabric.store.open_store`.
Every implementation passes the same conformance suite (``tests/store``).

Writes happen inside a :class:`Transaction`; everything done in one transaction (records, tombstones, the checkpoint
that covers them, quarantine entries) commits together or not at all. That is what makes a re-run idempotent and a
crash lossless.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import msgspec


def content_hash(payload: bytes) -> str:
    """The content hash the store compares to skip unchanged records: BLAKE2b-128 of the canonical JSON."""
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def content_hashes(payloads: Iterable[bytes]) -> list[str]:
    """``content_hash`` of each payload (a page of them, without a call per payload). Each hash starts as a copy
    of one empty BLAKE2b-128 object: half the cost of making one with its keyword arguments per payload."""
    empty = hashlib.blake2b(digest_size=16)
    digests = []
    append = digests.append
    for payload in payloads:
        digest = empty.copy()
        digest.update(payload)
        append(digest.hexdigest())
    return digests


class Op(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


class Lineage(msgspec.Struct, frozen=True, gc=False):
    """Where a record came from: enough to trace it back to its source. Not tracked by the garbage collector (it
    holds strings only, so it is never part of a reference cycle), like :class:`Change`."""

    source_system: str = ""
    source_id: str = ""
    """Where in the source: a file and line (``items.csv:14``), an API id, a message id."""
    batch_id: str = ""
    mapping_version: str = ""


class IncomingRecord(msgspec.Struct, frozen=True):
    """A canonical record on its way into the store. ``payload`` is the canonical JSON encoding."""

    key: str
    payload: bytes
    lineage: Lineage = Lineage()
    input_hash: str | None = None
    """The hash of the input this record was mapped from (batch sync: flow, mapping and raw record), kept with the
    key's state even when the record itself is unchanged; ``None`` keeps none."""
    payload_hash: str = ""
    """``content_hash(payload)`` if the producer already computed it (a mapping worker process); else empty."""

    @property
    def content_hash(self) -> str:
        return self.payload_hash or content_hash(self.payload)


class RecordBatch(msgspec.Struct, frozen=True):
    """Canonical records on their way into the store as columns, one entry per record in each list, with the raw
    records they were mapped from: what a bulk load hands over (and a mapping worker process sends) in one piece.
    Keys are unique within a batch."""

    keys: list[str]
    payloads: list[str]
    """The canonical JSON of each record, as text."""
    hashes: list[str]
    """``content_hash`` of each payload's UTF-8."""
    source_ids: list[str]
    """Where in the source each record came from (its lineage's ``source_id``)."""
    input_hashes: list[str | None]
    """See :attr:`IncomingRecord.input_hash`."""
    source_system: str = ""
    batch_id: str = ""
    mapping_version: str = ""
    flow: str = ""
    """The inbound flow whose mapping made the records (the raw records' ``flow``)."""
    raws: list[str] | None = None
    """The raw record behind each record as JSON text, kept with the keys the batch writes; ``None`` keeps none."""

    def records(self) -> list[IncomingRecord]:
        """The batch as records for :meth:`Transaction.apply`."""
        system, batch_id, version = self.source_system, self.batch_id, self.mapping_version
        return [IncomingRecord(key, payload.encode(), Lineage(system, where, batch_id, version), inputs, digest)
                for key, payload, digest, where, inputs in zip(
                    self.keys, self.payloads, self.hashes, self.source_ids, self.input_hashes, strict=True)]

    def sources(self, keys: Sequence[str]) -> list[NewSource]:
        """The raw records behind ``keys`` (keys of the batch), for :meth:`Transaction.put_sources`."""
        if self.raws is None or not keys:
            return []
        index = {key: number for number, key in enumerate(self.keys)}
        raws, where, flow = self.raws, self.source_ids, self.flow
        return [NewSource(key, flow, raws[number], where[number])
                for key in keys for number in (index[key],)]

    def without(self, keys: set[str]) -> RecordBatch:
        """The batch less the records of ``keys``."""
        kept = [number for number, key in enumerate(self.keys) if key not in keys]

        def pick(column: list[Any] | None) -> Any:
            return None if column is None else [column[number] for number in kept]

        return msgspec.structs.replace(
            self, keys=pick(self.keys), payloads=pick(self.payloads), hashes=pick(self.hashes),
            source_ids=pick(self.source_ids), input_hashes=pick(self.input_hashes), raws=pick(self.raws))


@dataclass(frozen=True, slots=True)
class StateRow:
    """The current state of one (entity, key)."""

    entity: str
    key: str
    version: int
    content_hash: str
    payload: bytes | None
    deleted: bool
    last_seq: int
    updated_at: dt.datetime


class Change(msgspec.Struct, frozen=True, gc=False):
    """One entry of the append-only change log (a msgspec Struct: consumers build one per entry they read).

    Not tracked by the garbage collector (``gc=False``: it holds strings, numbers, bytes, a time and a
    :class:`Lineage`, so it is never part of a reference cycle). A process that records and delivers keeps the last
    ten thousand in memory (:mod:`.recent`); tracked, they were most of what every full collection walked, a pause
    of all the process's threads of 10-30 ms on the event path; and each one built counted towards the next young
    collection."""

    seq: int
    entity: str
    key: str
    version: int
    op: Op
    content_hash: str
    payload: bytes | None
    recorded_at: dt.datetime
    lineage: Lineage


@dataclass(slots=True)
class ApplyResult:
    """What one ``apply`` or ``delete`` did."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    last_seq: int | None = None
    changed_keys: list[str] = field(default_factory=list)
    """The keys ``apply`` inserted or updated (not those unchanged), in order."""

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted

    def __iadd__(self, other: ApplyResult) -> ApplyResult:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        if other.last_seq is not None:
            self.last_seq = other.last_seq
        self.changed_keys += other.changed_keys
        return self


class QuarantineStatus(StrEnum):
    OPEN = "open"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


@dataclass(frozen=True, slots=True)
class NewQuarantine:
    """A rejected record with every reason it was rejected and where it came from."""

    flow: str
    system: str
    entity: str
    reasons: Sequence[str]
    payload: str
    """The raw record as received (a CSV row as JSON, a message body...), so it can be fixed and replayed."""
    record_key: str = ""
    location: str = ""
    """Where in the source: ``items.csv:14``, a message id, a URL."""
    mapping_version: str = ""
    """The version of the mapping (with its code maps and unit table) that rejected it."""


class QuarantineAction(StrEnum):
    """A step in a quarantine entry's history."""

    CREATED = "created"
    EDITED = "edited"
    REPLAYED = "replayed"
    REPLAY_FAILED = "replay_failed"
    DISCARDED = "discarded"


@dataclass(frozen=True, slots=True)
class NewQuarantineEvent:
    """One step to record in a quarantine entry's history."""

    entry_id: int
    action: QuarantineAction
    detail: str = ""
    """What changed or why: the fields edited, the reasons a replay failed, the key a replay wrote..."""
    actor: str = ""


@dataclass(frozen=True, slots=True)
class QuarantineEvent:
    id: int
    entry_id: int
    action: QuarantineAction
    detail: str
    actor: str
    recorded_at: dt.datetime


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    id: int
    flow: str
    system: str
    entity: str
    record_key: str
    location: str
    reasons: list[str]
    payload: str
    status: QuarantineStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    mapping_version: str = ""
    """The mapping version that rejected it last (at first, or at its last failed replay)."""


class NewSource(msgspec.Struct, frozen=True):
    """The raw record a stored canonical record was mapped from, kept so that a changed mapping can be tried on it."""

    key: str
    flow: str
    payload: str
    """The raw record as received, as JSON text (the same form quarantine keeps)."""
    source_id: str = ""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A live stored record with the raw record it was mapped from and the lineage of its current version."""

    entity: str
    key: str
    flow: str
    source_id: str
    raw: str
    payload: bytes
    """The current canonical payload."""
    version: int
    mapping_version: str
    """The mapping version that produced the current version (from its change-log entry)."""


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of one flow, with what it moved."""

    id: int
    flow: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    status: RunStatus
    records_in: int = 0
    records_out: int = 0
    unchanged: int = 0
    quarantined: int = 0
    detail: dict[str, object] = field(default_factory=dict)


class DeadLetterStatus(StrEnum):
    OPEN = "open"
    """Not delivered; its key is held for its flow: later changes of the key are parked behind it."""
    REPLAYED = "replayed"
    DISCARDED = "discarded"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One step in a dead letter's history: a failed or rejected delivery, a parking, a replay, a discard."""

    at: dt.datetime
    outcome: str
    """``failed`` (transient, retried), ``rejected`` (permanent), ``exhausted``, ``held``, ``replayed``,
    ``replay_failed``, ``discarded``."""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class NewDeadLetter:
    """A change an outbound flow could not deliver, or parked behind one of its key that it could not."""

    flow: str
    system: str
    entity: str
    record_key: str
    seq: int
    """The change-log entry (its newest, when a batch folded several changes of the key)."""
    version: int
    payload: str | None
    """The canonical JSON sent (None for a deletion)."""
    reason: str
    attempts: Sequence[Attempt] = ()
    held_by: int | None = None
    """The dead letter of the same key this change is parked behind; None for the one that failed itself."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    flow: str
    system: str
    entity: str
    record_key: str
    seq: int
    version: int
    payload: str | None
    reason: str
    status: DeadLetterStatus
    held_by: int | None
    attempts: list[Attempt]
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Alert:
    """Something a flow did by itself that people should know: a fallback to batch catch-up, a recovery."""

    id: int
    flow: str
    kind: str
    message: str
    detail: dict[str, object]
    raised_at: dt.datetime


class DeliveryBatch(msgspec.Struct, frozen=True):
    """The records of one entity and group a target confirmed in one batch: one delivery-log row, what it keeps for
    freshness and latency (``syncfabric.observe``)."""

    flow: str
    system: str
    entity: str
    group: str
    """The plant or location the records concern (their ``location_id``), "" when none."""
    records: int
    first_seq: int
    last_seq: int
    """The lowest and highest change-log entry delivered."""
    newest_source_time: dt.datetime
    """The latest time a fact of the batch happened at the source (a record's ``as_of``, an event's
    ``occurred_at``...)."""
    confirmed_at: dt.datetime
    latency: tuple[tuple[int, int], ...]
    """Delivery latency (``confirmed_at`` - a record's source time, at least 0) of each record, as counts per bucket
    (``(bucket, count)``, see :mod:`syncfabric.observe.histogram`)."""
    latency_sum: float
    latency_max: float
    newest_changed_at: dt.datetime | None = None
    changes: tuple[tuple[dt.datetime, tuple[str, ...]], ...] = ()
    """``(changed_at, record keys)``: the keys of the records whose source says when the fact changed (an event's
    time, a balance's ``changed_at``; not a snapshot stamped only with its read time), by change time: what
    ``syncfabric.observe.freshness.change_latencies`` counts once per key and change."""


@dataclass(frozen=True, slots=True)
class DeliveryGroup:
    """The delivery log of one flow, entity and group, summed up."""

    flow: str
    system: str
    entity: str
    group: str
    records: int
    newest_source_time: dt.datetime
    last_confirmed_at: dt.datetime


class Transaction(ABC):
    """Writes that commit together. Obtained from :meth:`Store.transaction`."""

    @abstractmethod
    def apply(self, entity: str, records: Sequence[IncomingRecord]) -> ApplyResult:
        """Upsert records. A record whose content hash equals the current one writes nothing; any other change
        bumps the key's version and appends one change-log entry. Keys must be unique within one call."""

    def apply_batch(self, entity: str, batch: RecordBatch, *, new: bool = False) -> ApplyResult:
        """:meth:`apply` the batch's records and keep the raw records behind those written (:meth:`put_sources`).
        With ``new``, the caller expects none of the keys to have a state yet (a first load): a backend may then
        insert them without looking them up first; if one has a state after all, the batch is applied as without
        ``new``, so the result is the same either way."""
        result = self.apply(entity, batch.records())
        if batch.raws is not None:
            self.put_sources(entity, batch.sources(result.changed_keys))
        return result

    def insert_new(self, entity: str, batch: RecordBatch) -> ApplyResult | None:
        """Insert the batch's records as the first version of their keys, as :meth:`apply_batch` would; ``None``,
        having written nothing, if one of the keys has a state already (deleted ones included) or a key is given
        twice. A backend may find that out from the insert itself, without looking the keys up first."""
        if len(set(batch.keys)) != len(batch.keys) or self.stored_fields(entity, batch.keys, None):
            return None
        return self.apply_batch(entity, batch)

    @abstractmethod
    def delete(self, entity: str, keys: Sequence[str], lineage: Lineage = Lineage()) -> ApplyResult:  # noqa: B008
        """Mark keys deleted (a tombstone in the change log). Unknown or already deleted keys write nothing."""

    @abstractmethod
    def get_many(self, entity: str, keys: Sequence[str]) -> dict[str, StateRow]:
        """The current (not deleted) rows of those ``keys`` that exist, read inside this transaction: under the
        write lock, so no other writer changes them before it commits."""

    @abstractmethod
    def stored_fields(self, entity: str, keys: Sequence[str], name: str | None) -> dict[str, Any]:
        """Those of ``keys`` that have a state, deleted ones included, each with the value of field ``name`` in its
        stored payload (``None`` when deleted, absent, or ``name`` is None), read under the write lock: what the
        listener compares source times with, and whether a batch holds only new keys."""

    @abstractmethod
    def set_checkpoint(self, name: str, value: str) -> None:
        """Record how far a flow got (a change-log sequence, a watermark, a file list...), as opaque text."""

    @abstractmethod
    def add_quarantine(self, entries: Sequence[NewQuarantine]) -> list[int]:
        """Store rejected records; returns their ids."""

    @abstractmethod
    def set_quarantine_status(self, ids: Sequence[int], status: QuarantineStatus) -> None: ...

    @abstractmethod
    def update_quarantine(
        self, entry_id: int, *, payload: str | None = None, reasons: Sequence[str] | None = None,
        mapping_version: str | None = None,
    ) -> None:
        """Replace an entry's raw payload (a fix) and/or its reasons and mapping version (a replay that failed
        again). An unknown id raises :class:`StoreError`."""

    @abstractmethod
    def add_quarantine_events(self, events: Sequence[NewQuarantineEvent]) -> None:
        """Append steps to quarantine entries' histories (``add_quarantine`` records ``created`` by itself)."""

    @abstractmethod
    def put_xref(self, system: str, entity: str, external_id: str, key: str) -> None:
        """Link a system's own id to a canonical key. Re-linking the same pair is a no-op; linking an external id
        or a canonical key that is already linked to something else raises :class:`StoreError`."""

    @abstractmethod
    def put_sources(self, entity: str, sources: Sequence[NewSource]) -> None:
        """Keep the raw records that the records stored in this transaction were mapped from, one per key (the
        newest replaces an older one), with the key's state (a key without one keeps none). A raw record equal to
        the one kept writes nothing."""

    @abstractmethod
    def add_dead_letters(self, entries: Sequence[NewDeadLetter]) -> list[int]:
        """Store changes a flow could not deliver (status open); returns their ids, in order."""

    @abstractmethod
    def update_dead_letters(
        self, ids: Sequence[int], attempt: Attempt, *, status: DeadLetterStatus | None = None,
        reason: str | None = None,
    ) -> None:
        """Append ``attempt`` to each entry's history; optionally set its status and reason. An unknown id raises
        :class:`StoreError`."""

    @abstractmethod
    def add_deliveries(self, entries: Sequence[DeliveryBatch]) -> None:
        """Append the batches a target confirmed to the delivery log (in the transaction that moves the checkpoint)."""


class Store(ABC):
    """The canonical store. Thread-safe for reads; one writer transaction at a time per process."""

    url: str

    @abstractmethod
    def migrate(self) -> None:
        """Create or upgrade the schema to the current version (idempotent)."""

    @abstractmethod
    def transaction(self, *, durable: bool = True) -> AbstractContextManager[Transaction]:
        """A write transaction: commits when the block ends, rolls back if it raises.

        ``durable=False``: the commit need not reach the disk before it returns (SQLite: no fsync, ``synchronous =
        NORMAL`` for this commit; PostgreSQL: ``synchronous_commit = off``). It is atomic and survives a crash of the
        process; only a power cut or an operating-system crash before a later durable commit (or the database's
        own flush) may undo it, never partly. For bookkeeping whose loss only means work done again: a delivered
        batch's outcome and checkpoints (the batch is sent again, and the idempotent target absorbs it)."""

    @abstractmethod
    def get(self, entity: str, key: str) -> StateRow | None: ...

    @abstractmethod
    def get_many(self, entity: str, keys: Sequence[str]) -> dict[str, StateRow]:
        """The live (not deleted) rows of those ``keys`` that exist, by key: one look-up for a whole page of
        references rather than one per record."""

    @abstractmethod
    def current(self, entity: str, *, include_deleted: bool = False) -> Iterator[StateRow]:
        """Current state of every key of an entity, ordered by key."""

    @abstractmethod
    def changes(self, after: int, *, entities: Sequence[str] | None = None, limit: int = 1000) -> list[Change]:
        """Change-log entries with ``seq > after``, oldest first, optionally only of some entities."""

    @abstractmethod
    def head(self) -> int:
        """The highest change-log sequence (0 for an empty log)."""

    @abstractmethod
    def checkpoint(self, name: str) -> str | None: ...

    @abstractmethod
    def count(self, entity: str) -> int:
        """Number of live (not deleted) keys of an entity."""

    @abstractmethod
    def xref(self, system: str, entity: str, external_id: str) -> str | None:
        """The canonical key a system's id is linked to, if any."""

    @abstractmethod
    def xref_external(self, system: str, entity: str, key: str) -> str | None:
        """The system's id linked to a canonical key, if any."""

    @abstractmethod
    def xref_externals(self, system: str, entity: str, keys: Sequence[str]) -> dict[str, str]:
        """The system's ids linked to canonical keys, by key (keys without a link are left out): one lookup for a
        batch."""

    @abstractmethod
    def quarantine(
        self,
        *,
        status: QuarantineStatus | None = QuarantineStatus.OPEN,
        flow: str | None = None,
        system: str | None = None,
        reason: str | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[QuarantineEntry]:
        """Quarantined records, filtered; ``reason`` matches as a substring of any reason."""

    @abstractmethod
    def quarantine_events(self, entry_id: int) -> list[QuarantineEvent]:
        """The history of one quarantine entry, oldest first."""

    @abstractmethod
    def quarantine_counts(self) -> dict[str, int]:
        """Open quarantine entries per flow."""

    @abstractmethod
    def start_run(self, flow: str) -> int:
        """Record that a flow run started (committed at once); returns the run id."""

    @abstractmethod
    def finish_run(
        self,
        run_id: int,
        status: RunStatus,
        *,
        records_in: int = 0,
        records_out: int = 0,
        unchanged: int = 0,
        quarantined: int = 0,
        detail: dict[str, object] | None = None,
    ) -> None: ...

    @abstractmethod
    def runs(self, flow: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Most recent runs first."""

    @abstractmethod
    def history(self, entity: str, key: str) -> list[Change]:
        """Every change-log entry of one key, oldest first, each with its lineage."""

    @abstractmethod
    def sources(self, entity: str, *, flow: str | None = None, keys: Sequence[str] | None = None
                ) -> Iterator[SourceRecord]:
        """Live records of an entity that have their raw source record kept, with it, ordered by key; optionally
        only those of one flow, or of some keys."""

    @abstractmethod
    def dead_letters(
        self,
        *,
        status: DeadLetterStatus | None = DeadLetterStatus.OPEN,
        flow: str | None = None,
        entity: str | None = None,
        key: str | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[DeadLetter]:
        """Dead letters, filtered, oldest first."""

    @abstractmethod
    def held_keys(self, flow: str) -> dict[tuple[str, str], int]:
        """(entity, key) of every open dead letter of a flow, with the id of the oldest: the keys it holds back."""

    @abstractmethod
    def dead_letter_counts(self) -> dict[str, int]:
        """Open dead letters per flow."""

    @abstractmethod
    def raise_alert(self, flow: str, kind: str, message: str, detail: dict[str, object] | None = None) -> int:
        """Record an alert (committed at once, like runs); returns its id."""

    @abstractmethod
    def alerts(self, flow: str | None = None, limit: int = 20) -> list[Alert]:
        """Most recent alerts first."""

    def wait_for_changes(self, timeout: float, stop: threading.Event | None = None) -> None:
        """Block until the change log may have grown, at most ``timeout`` seconds, or until ``stop`` is set.

        The default waits out the timeout (a consumer then polls); a backend told of commits returns as soon as
        one happens (PostgreSQL: LISTEN/NOTIFY). Either way the caller reads the log afterwards to see."""
        (stop or threading.Event()).wait(timeout)

    @abstractmethod
    def close(self) -> None: ...

    # -- leases: one holder at a time for singleton jobs and shares of work ----------------------------------------

    @abstractmethod
    def acquire_lease(self, name: str, holder: str, seconds: float, *, replacing: str | None = None) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``seconds`` from now. True when ``holder`` holds it
        now; false when another holder's lease has not expired, unless that holder is ``replacing`` (known to be
        gone). Commits at once, without the change-log lock; atomic across processes sharing the store."""

    @abstractmethod
    def lease_holder(self, name: str) -> str | None:
        """Who holds lease ``name`` now (None when nobody does, or the lease expired)."""

    @abstractmethod
    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up, if ``holder`` holds it (so another can take it before it expires)."""

    @abstractmethod
    def leases(self, prefix: str = "") -> dict[str, str]:
        """The unexpired leases whose names start with ``prefix``: holder by lease name."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- consistent snapshots ------------------------------------------------------------------------------------------

    @abstractmethod
    def current_as_of(self, entity: str, seq: int, *, include_deleted: bool = False,
                      after_key: str | None = None) -> Iterator[StateRow]:
        """The state of every key of an entity as it was right after change-log sequence ``seq``, ordered by key:
        keys changed since come from the change log. Several entities read at one ``seq`` form a consistent cut
        however much is written meanwhile. ``last_seq`` is the sequence of the change that row reflects.
        ``after_key``: only the keys that come after it in that order (a walk resumed after its last key)."""

    @abstractmethod
    def live_keys(self, entity: str) -> Iterator[str]:
        """The keys of an entity that are not deleted, in no particular order: only the keys, for a snapshot's
        deletions."""

    @abstractmethod
    def live_inputs(self, entity: str) -> dict[str, str | None]:
        """Each live key of an entity with the hash of the input its state was last accepted from
        (``IncomingRecord.input_hash``), ``None`` where the state keeps none: what a full refresh needs to skip rows
        that did not change, and the keys its snapshot may delete."""

    # -- the delivery log ----------------------------------------------------------------------------------------------

    @abstractmethod
    def delivery_groups(self, *, flow: str | None = None, entity: str | None = None) -> list[DeliveryGroup]:
        """Per flow, entity and group: records confirmed, the newest source time, the last confirmation."""

    @abstractmethod
    def deliveries(self, *, since: dt.datetime, until: dt.datetime | None = None, flow: str | None = None,
                   entity: str | None = None) -> list[DeliveryBatch]:
        """Delivery-log rows (one per batch, entity and group) confirmed in ``[since, until]``, oldest confirmation
        first."""

    @abstractmethod
    def prune_deliveries(self, before: dt.datetime) -> int:
        """Delete delivery-log rows confirmed before ``before``, except the newest (by newest source time) of each
        flow, entity and group, so that freshness stays known; returns how many rows were deleted."""
