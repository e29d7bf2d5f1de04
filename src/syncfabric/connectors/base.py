"""The connector contract: small on purpose.

A connector speaks one protocol to one system. It reads raw records in pages with a resumable cursor, writes
records idempotently and reports per-record outcomes, and translates every protocol or driver error once, here at
the boundary, into :class:`~syncfabric.errors.TransientError` or :class:`~syncfabric.errors.PermanentError`.

Mapping to and from the canonical model happens outside the connector (``syncfabric.mapping``); a connector only
moves raw records (``dict``) with a ``location`` saying where each came from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Flag, auto
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from syncfabric.errors import PermanentError


class Capability(Flag):
    READ_FULL = auto()
    READ_CHANGES = auto()
    SUBSCRIBE = auto()
    WRITE = auto()
    CALL = auto()


class RawRecord(msgspec.Struct, frozen=True):
    """A record as the system gave it, before mapping. ``location`` says where it is (``items.csv:14``)."""

    data: dict[str, Any]
    location: str = ""
    input_hash: str | None = None
    """Set by a read that skips unchanged rows (``Connector.read_full_known``): the row's input hash."""


@dataclass(frozen=True, slots=True)
class Page:
    """A page of raw records and the cursor to resume after it.

    ``cursor`` is opaque text the connector understands; a flow commits it as its checkpoint in the same
    transaction as the records of the page. ``complete`` is true on the last page of a full read that is known
    to contain every record (only then may missing keys become deletions)."""

    records: Sequence[RawRecord]
    cursor: str | None = None
    complete: bool = False
    problems: Sequence[RejectedRaw] = ()
    unchanged: Sequence[tuple[str, int]] = ()
    """Rows left unread because their input is known (``Connector.read_full_known``): each row's key, and how many
    of ``records`` come before it."""


class RejectedRaw(msgspec.Struct, frozen=True):
    """Input the connector could not even parse into a raw record (a broken CSV line)."""

    raw: str
    reason: str
    location: str


class OutboundRecord(msgspec.Struct, frozen=True):
    """A record to write to a target: its canonical key and version, and the payload in the target's shape.
    ``payload`` is None for a deletion. A msgspec Struct (one is built per delivered change; change one with
    ``msgspec.structs.replace``)."""

    key: str
    version: int
    payload: dict[str, Any] | None
    external_id: str | None = None
    """The target's own id this key is linked to in the cross-reference, for a connector that
    ``links_external_ids`` (the document a planned order already became)."""
    target_key: dict[str, Any] | None = None
    """Through an outbound mapping: the target's fields computed from the canonical key, for a deletion (which has
    no payload to map) to be addressed by."""


@dataclass(slots=True)
class WriteOutcome:
    """Per-record result of a write: keys accepted, and keys rejected with the reason."""

    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    """Accepted keys → the id the target gave the record (a purchase order number); the outbound flow keeps each
    link in the cross-reference (system, entity, that id → canonical key)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A record the target took on write and refused later, when it processed it: a row of a legacy import job's
    reject file. ``key`` is the record's canonical key; ``reason`` names where the target said so (file, line,
    reference) and why; ``source`` is what :meth:`Connector.forget_refusals` is given back once it is stored."""

    key: str
    reason: str
    source: str


class Acknowledgement(msgspec.Struct, frozen=True):
    """What became of one received record, told back to its source: ``stored`` (durably in the store) or
    ``quarantined`` (durably in quarantine, with the reasons). Only sent after the transaction committed."""

    status: str
    reasons: tuple[str, ...] = ()


class Received(msgspec.Struct, frozen=True):
    """Records that arrived together from a subscription (one MQTT message; the events of one webhook request),
    with the function that acknowledges them to their source (a PUBACK, the HTTP answer). Unacknowledged records
    are delivered again by the source, so acknowledging is the last step. A request of many events is one of these
    around its decoded array: nothing is built per event on the way in, and the listener maps and acknowledges the
    rows together. A delivery larger than a batch is taken in parts (:meth:`part`), each acknowledged on its own."""

    rows: list[Any]
    """The records as decoded, in order: ``dict``s, except where ``problems`` names one (that may be anything)."""
    location: str
    """Where they came from: the location of the only record, or with ``numbered`` what each record's location
    starts with (``POST /events/x from 10.0.0.5 at 1767225600`` and `` [3]`` for the fourth)."""
    ack: Callable[[int, list[Acknowledgement]], None]
    """Called once per part, after its commit, with ``first`` and the acknowledgement of each of ``rows``."""
    problems: dict[int, RejectedRaw] | None = None
    """The records that could not be used (not JSON, not an object), by their index in the delivery."""
    numbered: bool = False
    """The records are the elements of an array, each located by its index in it."""
    first: int = 0
    """The index in the delivery of ``rows[0]`` (not 0 for the second part of a delivery split across batches)."""

    def part(self, start: int, stop: int) -> Received:
        """``rows[start:stop]`` with their location and acknowledgement (the part's own ``first``)."""
        return msgspec.structs.replace(self, rows=self.rows[start:stop], first=self.first + start)

    def locations(self) -> list[str]:
        """Where each of ``rows`` came from, in order (built only when asked: the listener asks once per batch)."""
        if not self.numbered:
            return [self.location] * len(self.rows)
        prefix, first = self.location, self.first
        return [f"{prefix} [{index}]" for index in range(first, first + len(self.rows))]


class Connector:
    """Base of every connector. Subclasses set ``kind`` and ``capabilities`` and override what they support."""

    kind: ClassVar[str] = ""
    capabilities: ClassVar[Capability] = Capability(0)
    config_type: ClassVar[type[Any]]
    """The msgspec Struct (in the package's ``configuration.py``) that the estate's ``connection`` decodes into."""
    secret_names: ClassVar[tuple[str, ...]] = ()
    """Credentials this kind can use, given in the estate as environment-variable references."""
    links_external_ids: ClassVar[bool] = False
    """Writes report the target's ids (``WriteOutcome.links``) and need the ids already linked
    (``OutboundRecord.external_id``): the outbound flow keeps them in the cross-reference."""

    def __init__(
        self, system: str, config: Any, secrets: dict[str, str] | None = None, *, base_dir: Path | None = None
    ) -> None:
        self.system = system
        self.config = config
        self.secrets = secrets or {}
        self.base_dir = base_dir or Path.cwd()
        """Where relative paths in the configuration are resolved: the estate file's folder."""

    @classmethod
    def source_problems(cls, config: Any, source: str, mode: str) -> list[str]:
        """What is wrong with an inbound flow reading ``source`` in ``mode`` (``full`` or ``changes``) from a
        system with this configuration, found without connecting; ``syncfabric validate`` reports it."""
        return []

    def open(self) -> None:
        """Acquire connections. Called once before use."""

    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> Connector:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def test_connection(self) -> None:
        """Raise a ConnectorError if the system cannot be reached or refuses our credentials."""

    def read_full(self, entity: str, cursor: str | None = None) -> Iterator[Page]:
        """Every record of a source entity, in pages, resuming after ``cursor``."""
        raise self._unsupported("read_full")

    def read_full_known(self, entity: str, cursor: str | None, known: Any) -> Iterator[Page]:
        """``read_full``, where rows whose input hash ``known`` (a ``flows.unchanged.KnownInputs``) holds for a key
        not in ``known.seen`` may be left unread and listed in ``Page.unchanged``; the records read then carry their
        ``input_hash``. By default every row is read, as by ``read_full``."""
        return self.read_full(entity, cursor)

    def read_changes(self, entity: str, since: str | None) -> Iterator[Page]:
        """Records changed since a watermark or cursor, in pages."""
        raise self._unsupported("read_changes")

    def read_snapshot(self, entity: str) -> Iterator[Page]:
        """Every record the source holds now, read without side effects (nothing acknowledged, archived or
        remembered): what reconciliation compares the store with. By default a full read from the start."""
        return self.read_full(entity, None)

    def subscribe(self, entity: str, *, durable: str, batch_size: int = 500, max_wait: float = 0.02,
                  poll: float = 0.5) -> Iterator[Sequence[Received]]:
        """Records as the source pushes them, in small batches: up to ``batch_size`` gathered for at most
        ``max_wait`` seconds after the first. An empty batch means nothing arrived within ``poll`` seconds (so the
        caller can stop). ``durable`` names the subscription; a source that keeps state for it (an MQTT session)
        delivers what arrived while nobody listened. The source is subscribed when this returns; the iterator's
        ``close()`` ends the subscription (see :class:`syncfabric.connectors.inbox.Subscription`)."""
        raise self._unsupported("subscribe")

    def acknowledge(self, entity: str, cursor: str) -> None:
        """Called after the records up to ``cursor`` are committed in the store: the source may now forget them
        (archive a file, acknowledge a message). Must be safe to call twice."""

    def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
        """Upsert (or delete, for ``payload=None``) idempotently: re-sending the same key and version is harmless."""
        raise self._unsupported("write")

    def refusals(self, entity: str) -> Sequence[Refusal]:
        """Records of ``entity`` the target refused after a write had taken them (a target that books later, as an
        import job does, answers later). The outbound flow reads them at the start of each run into dead letters.
        By default none: a target that answers its writes at once refuses there."""
        return ()

    def forget_refusals(self, entity: str, sources: Sequence[str]) -> None:
        """Called once the refusals read from ``sources`` are stored as dead letters: the target's answers may be
        put away (a reject file archived). Must be safe to call twice."""

    def call(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        """A request-response operation."""
        raise self._unsupported("call")

    def _unsupported(self, what: str) -> PermanentError:
        hint = ""
        if what.startswith("read") and self.capabilities & Capability.SUBSCRIBE:
            hint = "; its systems push events: run the flow with `syncfabric listen FLOW`"
        return PermanentError(f"connector kind {self.kind!r} does not support {what}{hint}", system=self.system)
