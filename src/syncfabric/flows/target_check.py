"""Does a target hold what the store says it should? A count, version and hash comparison per entity.

For each entity of an outbound flow: the live keys of the store with their versions, against the records the target
reads back (``read_full``), each located as ``<target entity>:<canonical key>`` and carrying the versions it
applied per canonical entity (``_versions``), as the planning connector reads them. A key is ``missing`` at the
target, ``extra`` there (the store deleted it or never had it), or ``behind`` (the target applied an older
version). The hash is over the sorted ``key:version`` pairs on each side: equal hashes mean equal content as far as
versions tell. Targets that cannot read back are not checked. :func:`repair` resends the current state of the keys
missing or behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from syncfabric.connectors.base import Capability, Connector
from syncfabric.flows.outbound import Pending, write_pending
from syncfabric.flows.result import FlowResult
from syncfabric.flows.retry import RetryPolicy
from syncfabric.store import NewDeadLetter, Store

SAMPLE = 10
"""Keys of each kind kept in a check, to show; the counts are complete."""


@dataclass
class EntityCheck:
    entity: str
    store_count: int
    target_count: int
    missing: int
    extra: int
    behind: int
    store_hash: str
    target_hash: str
    sample: list[str]
    """A few keys that differ, as ``missing K``, ``extra K``, ``behind K (v2 < v3)``."""
    to_resend: list[str] = field(default_factory=list)
    """Every key missing at the target or behind there: what :func:`repair` sends."""

    @property
    def ok(self) -> bool:
        return self.missing == self.extra == self.behind == 0

    def as_dict(self) -> dict[str, object]:
        shown = asdict(self)
        del shown["to_resend"]
        return {**shown, "ok": self.ok}


def reconcile(store: Store, connector: Connector, entities: Sequence[str], *,
              upto: int | None = None) -> list[EntityCheck] | None:
    """Compare each entity; None when the target cannot read back what it holds. With ``upto`` (the flow's
    checkpoint), keys changed after it are not compared: they are on their way, not missing."""
    if not connector.capabilities & Capability.READ_FULL:
        return None
    return [_check(store, connector, entity, upto) for entity in entities]


def _check(store: Store, connector: Connector, entity: str, upto: int | None) -> EntityCheck:
    ours: dict[str, int] = {}
    in_flight: set[str] = set()
    for row in store.current(entity, include_deleted=upto is not None):
        if upto is not None and row.last_seq > upto:
            in_flight.add(row.key)
        elif not row.deleted:
            ours[row.key] = row.version
    theirs: dict[str, int | None] = {}
    for page in connector.read_full(entity):
        for record in page.records:
            _, _, key = record.location.partition(":")
            versions = record.data.get("_versions")
            version = versions.get(entity) if isinstance(versions, dict) else None
            if key not in in_flight:
                theirs[key] = version if isinstance(version, int) else None
    missing = sorted(set(ours) - set(theirs))
    extra = sorted(set(theirs) - set(ours))
    behind = sorted(key for key in set(ours) & set(theirs)
                    if theirs[key] is not None and theirs[key] < ours[key])  # type: ignore[operator]
    sample = ([f"missing {k}" for k in missing[:SAMPLE]] + [f"extra {k}" for k in extra[:SAMPLE]]
              + [f"behind {k} (v{theirs[k]} < v{ours[k]})" for k in behind[:SAMPLE]])
    return EntityCheck(entity=entity, store_count=len(ours), target_count=len(theirs), missing=len(missing),
                       extra=len(extra), behind=len(behind), store_hash=_digest(ours.items()),
                       target_hash=_digest(theirs.items()), sample=sample, to_resend=sorted([*missing, *behind]))


def _digest(pairs: Iterable[tuple[str, int | None]]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for key, version in sorted(pairs):
        digest.update(f"{key}:{version}\n".encode())
    return digest.hexdigest()


def repair(store: Store, flow: str, connector: Connector, checks: Sequence[EntityCheck], *,
           retry: RetryPolicy | None = None, batch_size: int = 1000) -> tuple[int, list[NewDeadLetter]]:
    """Send the current state of every key a check found missing or behind at the target (keys the flow holds
    with a dead letter excepted: they keep their order). Returns the records accepted and the dead letters of
    those rejected, which the caller stores. Keys extra at the target are left alone: the target may own them."""
    held = store.held_keys(flow)
    result = FlowResult(flow=flow, direction="outbound")
    letters: list[NewDeadLetter] = []
    for check in checks:
        keys = [key for key in check.to_resend if (check.entity, key) not in held]
        for start in range(0, len(keys), batch_size):
            rows = store.get_many(check.entity, keys[start:start + batch_size])
            pending = [Pending.of_state(row) for row in rows.values()]
            if pending:
                letters += write_pending(connector, flow, {check.entity: pending}, retry or RetryPolicy(), result)
    return result.records_out, letters
