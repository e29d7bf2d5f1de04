"""Rows a full refresh need not map again: their input is the one the key's current state was accepted from.

Each record a full refresh stores keeps, with its key's state, the hash of its input (``sf_state.input_hash``):
BLAKE2b-128 of the raw row as JSON, keyed with the flow, the entity, the mapping (its definition and version) and
the release of the product (whose canonical checks decide what is accepted). At the start of a run the hashes of
the entity's live keys are read once; a row whose hash is among them would map to the record already stored, so it
is counted as unchanged and its key as present in the snapshot, without mapping, validation or a write.
A connector that can tell such rows before parsing them (``Connector.read_full_known``) leaves them unread: the
files connector hashes each CSV line without quotes as its text (with the file's header and delimiter in the hash
key), and a quoted row, which may span lines, as its parsed cells.

What keeps that sound:

- only mappings whose result depends on the row alone take part (plain column renames, see
  :func:`~syncfabric.flows.rename_plan.renames_only`) and only flows without data-quality rules, which may read the
  store and report warnings each run;
- a changed mapping, flow or release changes the hash key, so every row is mapped again, and the hash of each row
  accepted then is stored, also for records that did not change;
- only accepted rows leave a hash: a row quarantined before is mapped and checked again, whatever it holds;
- any other write of the key's state (another flow, a replay, a deletion) stores no hash or clears it;
- a key already met earlier in the same snapshot is mapped (the last row of a key wins), and within a page a
  skipped row that comes after a mapped row of its key undoes that row's write.

The hashes are those of the store when the snapshot starts. A key that another flow writes while the snapshot runs
keeps that write if this flow's row for it is unchanged; without the skip, the snapshot would have written its own
version over it (whichever committed last won either way).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

import syncfabric
from syncfabric.flows.rename_plan import renames_only
from syncfabric.mapping import FieldMap
from syncfabric.mapping.rules import RuleSet
from syncfabric.store import Store


@dataclass(slots=True)
class KnownInputs:
    """The input hashes of an entity's live keys, and how to hash a raw row for this flow and mapping."""

    salt: bytes
    """The hash key: what stands for the flow, the mapping and the release."""
    keys: dict[str, str]
    """Input hash -> key, as stored when the snapshot started."""
    live: list[str] | None = None
    """The entity's live keys when the snapshot started, if read: those the snapshot does not contain are the ones
    it deletes (a key stored during the snapshot is in it, or another flow's)."""
    seen: set[str] = field(default_factory=set)
    """Keys met in the snapshot so far (before the current page): their rows are mapped, not skipped."""
    digest: Callable[[bytes], str] = field(init=False)
    """The input hash of a raw row encoded as JSON."""

    def __post_init__(self) -> None:
        blake2b, key = hashlib.blake2b, self.salt

        def digest(raw_json: bytes) -> str:
            return blake2b(raw_json, digest_size=16, key=key).hexdigest()

        self.digest = digest

    def read(self, store: Store, entity: str) -> None:
        """Take the input hashes and the live keys of ``entity`` from ``store`` (in one read)."""
        live = store.live_inputs(entity)
        self.keys = {digest: key for key, digest in live.items() if digest is not None}
        self.live = list(live)

    def line_hasher(self, context: bytes) -> Any:
        """The hash of rows given as their text in a file, for files whose rows read the same whenever their text
        and ``context`` (format, dialect, header) are the same: a keyed BLAKE2b to copy, update with the row's
        text (UTF-8) and take the hex digest of. Its own hash key, so never equal to ``digest`` for other input."""
        blake2b = hashlib.blake2b
        return blake2b(digest_size=16, key=blake2b(b"line\x00" + context, digest_size=32, key=self.salt).digest())


def known_inputs(
    store: Store, flow_name: str, field_map: FieldMap, rules: RuleSet | None, *, read: bool = True
) -> KnownInputs | None:
    """What a full refresh of ``flow_name`` needs to skip unchanged rows, or ``None`` if its rows must all be
    mapped (the mapping consults more than the row, or rules apply). With ``read`` false, no hashes are read yet."""
    if rules or not renames_only(field_map):
        return None
    salt = msgspec.json.encode([syncfabric.__version__, flow_name, field_map.entity_cls.entity, field_map.version,
                                field_map.mapping])
    inputs = KnownInputs(hashlib.blake2b(salt, digest_size=32).digest(), {})
    if read:
        inputs.read(store, field_map.entity_cls.entity)
    return inputs
