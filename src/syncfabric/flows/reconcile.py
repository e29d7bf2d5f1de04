"""Does a target hold what the store says it should? A count, version and hash comparison per entity.

For each entity of an outbound flow: the live keys of the store with their versions, against the records the target
reads back (``read_full``), each located as ``<target entity>:<canonical key>`` and carrying the versions it
applied per canonical entity (``_versions``), as the planning connector reads them. A key is ``missing`` at the
target, ``extra`` there (the store deleted it or never had it), or ``behind`` (the target applied an older
version). The hash is over the sorted ``key:version`` pairs on each side: equal hashes mean equal content as far as
versions tell. Targets that cannot read back are not checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from syncfabric.connectors.base import Capability, Connector
from syncfabric.store import Store

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

    @property
    def ok(self) -> bool:
        return self.missing == self.extra == self.behind == 0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


def reconcile(store: Store, connector: Connector, entities: Sequence[str]) -> list[EntityCheck] | None:
    """Compare each entity; None when the target cannot read back what it holds."""
    if not connector.capabilities & Capability.READ_FULL:
        return None
    return [_check(store, connector, entity) for entity in entities]


def _check(store: Store, connector: Connector, entity: str) -> EntityCheck:
    ours = {row.key: row.version for row in store.current(entity)}
    theirs: dict[str, int | None] = {}
    for page in connector.read_full(entity):
        for record in page.records:
            _, _, key = record.location.partition(":")
            versions = record.data.get("_versions")
            version = versions.get(entity) if isinstance(versions, dict) else None
            theirs[key] = version if isinstance(version, int) else None
    missing = sorted(set(ours) - set(theirs))
    extra = sorted(set(theirs) - set(ours))
    behind = sorted(key for key in set(ours) & set(theirs)
                    if theirs[key] is not None and theirs[key] < ours[key])  # type: ignore[operator]
    sample = ([f"missing {k}" for k in missing[:SAMPLE]] + [f"extra {k}" for k in extra[:SAMPLE]]
              + [f"behind {k} (v{theirs[k]} < v{ours[k]})" for k in behind[:SAMPLE]])
    return EntityCheck(entity=entity, store_count=len(ours), target_count=len(theirs), missing=len(missing),
                       extra=len(extra), behind=len(behind), store_hash=_digest(ours.items()),
                       target_hash=_digest(theirs.items()), sample=sample)


def _digest(pairs: Iterable[tuple[str, int | None]]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for key, version in sorted(pairs):
        digest.update(f"{key}:{version}\n".encode())
    return digest.hexdigest()
