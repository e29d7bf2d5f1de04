"""Reconciliation: do source, store and target hold the same records of one domain?

Each side is read into ``canonical key -> content hash``:

- **source**: every inbound flow of the entity re-reads its system through its connector (``read_snapshot``: no
  acknowledgement, nothing archived) and maps the records with its mapping and rules, writing nothing. A flow in
  mode ``changes`` is compared only when it reads by watermark (its source then holds every record); a source
  record that does not map is counted as rejected and left out of the comparison (it is in quarantine);
- **store**: the live records of the entity;
- **target**: every outbound flow that sends the entity and whose connector can read back what it holds
  (``held_hashes`` and ``expected_hash``: the store's records in the target's shape).

The source is compared with the store, and the store with each target: keys missing from the second, extra in it,
and different (same key, other hash), with samples. The result is recorded in the run history as a run named
``reconcile:<domain>``: succeeded when every side matches, failed otherwise.

The same comparison has a second view, the one an outbound flow's fallback checks after a catch-up
(:func:`check_target`): store against one target by **version**, per entity of the flow. The target reads back its
records (``read_full``), each located as ``<target entity>:<canonical key>`` and carrying the versions it applied per
canonical entity (``_versions``). A key is missing there, extra there, or ``behind`` (the target applied an older
version: the view's "different"); keys changed after the flow's checkpoint are on their way and left out. A hash of
the sorted ``key:version`` pairs on each side tells equal content at a glance. :func:`repair` resends the current
state of the keys missing or behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from syncfabric.config.schema import Estate
from syncfabric.connectors.base import Capability, Connector
from syncfabric.errors import ConfigError
from syncfabric.flows.inbound import map_and_check
from syncfabric.flows.outbound import Link, Pending, keep_delivery, write_pending
from syncfabric.flows.result import FlowResult
from syncfabric.flows.retry import RetryPolicy
from syncfabric.model import ENTITIES
from syncfabric.store import NewDeadLetter, RunStatus, Store, content_hash

SAMPLES = 5


@dataclass
class Side:
    """What one side holds: ``hashes`` by key, or None (and a ``note``) when it cannot be read."""

    role: str
    """source, store or target."""
    name: str
    hashes: dict[str, Any] | None = None
    """Content hashes, or versions in the delivery view (None: a version the target does not tell)."""
    note: str = ""
    rejected: int = 0
    """Source records that do not map (they are in quarantine): left out of the comparison."""


@dataclass
class Comparison:
    left: str
    right: str
    keys: int
    """Keys on the left: what the right should hold."""
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return not (self.missing or self.extra or self.different)

    @property
    def equal(self) -> int:
        return self.keys - len(self.missing) - len(self.different)

    def summary(self, samples: int = SAMPLES) -> dict[str, object]:
        return {"left": self.left, "right": self.right, "keys": self.keys, "equal": self.equal,
                "missing": len(self.missing), "extra": len(self.extra), "different": len(self.different),
                "samples": {"missing": self.missing[:samples], "extra": self.extra[:samples],
                            "different": self.different[:samples]}}


@dataclass
class Reconciliation:
    domain: str
    entity: str
    sides: list[Side] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    run_id: int | None = None

    @property
    def matches(self) -> bool:
        """Every comparison matches, and at least one was made."""
        return bool(self.comparisons) and all(c.matches for c in self.comparisons)

    def detail(self, samples: int = SAMPLES) -> dict[str, object]:
        return {"domain": self.domain, "entity": self.entity, "match": self.matches,
                "sides": [{"role": s.role, "name": s.name, "keys": None if s.hashes is None else len(s.hashes),
                           "rejected": s.rejected, "note": s.note} for s in self.sides],
                "comparisons": [c.summary(samples) for c in self.comparisons]}


def resolve_entity(estate: Estate, domain: str) -> str:
    """The canonical entity of an estate domain, or the entity itself."""
    if domain in estate.domains:
        return estate.domains[domain].entity
    if domain in ENTITIES:
        return domain
    known = sorted({*estate.domains, *ENTITIES})
    raise ConfigError([f"unknown domain or entity {domain!r}; domains: {', '.join(estate.domains) or 'none'}; "
                       f"entities: {', '.join(e for e in known if e in ENTITIES)}"])


def compare(left: Side, right: Side, differs: Callable[[Any, Any], bool] | None = None) -> Comparison:
    """Keys of ``left`` missing from ``right``, extra in it, and different (``differs(left value, right value)``,
    by default unequal)."""
    assert left.hashes is not None and right.hashes is not None
    theirs = right.hashes
    differs = differs or (lambda ours, other: ours != other)
    comparison = Comparison(left.name, right.name, len(left.hashes))
    for key in sorted(left.hashes):
        if key not in theirs:
            comparison.missing.append(key)
        elif differs(left.hashes[key], theirs[key]):
            comparison.different.append(key)
    comparison.extra = sorted(key for key in theirs if key not in left.hashes)
    return comparison


def reconcile(runtime, domain: str, *, progress: Callable[[str], None] | None = None) -> Reconciliation:
    """Compare source, store and target of one domain (or entity) and record the result in the run history."""
    estate = runtime.estate
    entity = resolve_entity(estate, domain)
    result = Reconciliation(domain, entity)
    say = progress or (lambda _text: None)
    run_id = runtime.store.start_run(f"reconcile:{domain}")
    result.run_id = run_id
    try:
        say("reading the sources")
        source = _source_side(runtime, entity)
        say("reading the store")
        stored = {row.key: row.content_hash for row in runtime.store.current(entity)}
        store_side = Side("store", "store", stored)
        result.sides = [source, store_side]
        if source.hashes is not None:
            result.comparisons.append(compare(source, store_side))
        for name, flow in estate.flows.items():
            if flow.direction == "outbound" and entity in flow.entities:
                say(f"reading target {flow.system}")
                target, expected = _target_side(runtime, name, flow.system, entity)
                result.sides.append(target)
                if expected is not None:
                    result.comparisons.append(compare(expected, target))
    except BaseException as exc:
        runtime.store.finish_run(run_id, RunStatus.FAILED, detail={"error": str(exc) or type(exc).__name__})
        raise
    runtime.store.finish_run(run_id, RunStatus.SUCCEEDED if result.matches else RunStatus.FAILED,
                             records_in=len(stored), detail=result.detail())
    return result


def _source_side(runtime, entity: str) -> Side:
    flows = [(name, flow) for name, flow in runtime.estate.flows.items()
             if flow.direction == "inbound" and flow.entities[0] == entity]
    if not flows:
        return Side("source", "source", note="no inbound flow of this entity")
    names = ", ".join(f"{flow.system} ({name})" for name, flow in flows)
    partial = [name for name, flow in flows if flow.mode == "changes" and flow.watermark is None]
    if partial:
        return Side("source", f"source {names}",
                    note=f"not compared: {', '.join(partial)} read net changes only (no full view of the source)")
    hashes: dict[str, str] = {}
    rejected = 0
    for _name, flow in flows:
        assert flow.mapping is not None
        field_map = runtime.field_map(flow.mapping)
        rules = runtime.rules(entity)
        with runtime.connector(flow.system) as connector:
            for page in connector.read_snapshot(flow.source or entity):
                rejected += len(page.problems)
                for outcome in map_and_check([raw.data for raw in page.records], field_map, rules, runtime.store):
                    if outcome.record is None:
                        rejected += 1
                    else:
                        hashes[outcome.key] = content_hash(msgspec.json.encode(outcome.record))
    return Side("source", f"source {names}", hashes, rejected=rejected)


def _target_side(runtime, flow_name: str, system: str, entity: str) -> tuple[Side, Side | None]:
    """What the target holds, and the store's live records in the target's shape to compare it with."""
    name = f"target {system} ({flow_name})"
    connector: Connector
    with runtime.connector(system) as connector:
        if not (hasattr(connector, "held_hashes") and hasattr(connector, "expected_hash")):
            return Side("target", name, note=f"connector kind {connector.kind!r} cannot read back what it holds"), None
        held = connector.held_hashes(entity)
        expected = {row.key: connector.expected_hash(entity, msgspec.json.decode(row.payload))
                    for row in runtime.store.current(entity) if row.payload is not None}
    return Side("target", name, held), Side("store", f"store (as {system} holds it)", expected)


# -- the delivery view: store against one target, by version (an outbound flow's check after catch-up) -----------

SAMPLE = 10
"""Keys of each kind a target check shows; the counts are complete."""


@dataclass
class TargetCheck:
    """One entity of a flow, store against target by version: :func:`compare` with "different" meaning behind."""

    entity: str
    comparison: Comparison
    target_count: int
    store_hash: str
    target_hash: str
    theirs: dict[str, Any] = field(repr=False, default_factory=dict)
    ours: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.comparison.matches

    @property
    def store_count(self) -> int:
        return self.comparison.keys

    @property
    def missing(self) -> int:
        return len(self.comparison.missing)

    @property
    def extra(self) -> int:
        return len(self.comparison.extra)

    @property
    def behind(self) -> int:
        return len(self.comparison.different)

    @property
    def to_resend(self) -> list[str]:
        """Every key missing at the target or behind there: what :func:`repair` sends."""
        return sorted([*self.comparison.missing, *self.comparison.different])

    @property
    def sample(self) -> list[str]:
        """A few keys that differ, as ``missing K``, ``extra K``, ``behind K (v2 < v3)``."""
        c = self.comparison
        return ([f"missing {k}" for k in c.missing[:SAMPLE]] + [f"extra {k}" for k in c.extra[:SAMPLE]]
                + [f"behind {k} (v{self.theirs[k]} < v{self.ours[k]})" for k in c.different[:SAMPLE]])

    def as_dict(self) -> dict[str, object]:
        return {"entity": self.entity, "store_count": self.store_count, "target_count": self.target_count,
                "missing": self.missing, "extra": self.extra, "behind": self.behind, "store_hash": self.store_hash,
                "target_hash": self.target_hash, "sample": self.sample, "ok": self.ok}


def check_target(store: Store, connector: Connector, entities: Sequence[str], *,
                 upto: int | None = None) -> list[TargetCheck] | None:
    """Compare each entity of a flow with what its target holds, by version; None when the target cannot read back
    what it holds. With ``upto`` (the flow's checkpoint), keys changed after it are not compared: they are on their
    way, not missing."""
    if not connector.capabilities & Capability.READ_FULL:
        return None
    return [_check_entity(store, connector, entity, upto) for entity in entities]


def _check_entity(store: Store, connector: Connector, entity: str, upto: int | None) -> TargetCheck:
    ours: dict[str, Any] = {}
    in_flight: set[str] = set()
    for row in store.current(entity, include_deleted=upto is not None):
        if upto is not None and row.last_seq > upto:
            in_flight.add(row.key)
        elif not row.deleted:
            ours[row.key] = row.version
    theirs: dict[str, Any] = {}
    for page in connector.read_full(entity):
        for record in page.records:
            _, _, key = record.location.partition(":")
            versions = record.data.get("_versions")
            version = versions.get(entity) if isinstance(versions, dict) else None
            if key not in in_flight:
                theirs[key] = version if isinstance(version, int) else None
    comparison = compare(Side("store", "store", ours), Side("target", connector.system, theirs),
                         differs=lambda mine, held: held is not None and held < mine)
    return TargetCheck(entity, comparison, len(theirs), _digest(ours.items()), _digest(theirs.items()), theirs, ours)


def _digest(pairs: Iterable[tuple[str, Any]]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for key, version in sorted(pairs):
        digest.update(f"{key}:{version}\n".encode())
    return digest.hexdigest()


def repair(store: Store, flow: str, connector: Connector, checks: Sequence[TargetCheck], *,
           retry: RetryPolicy | None = None, batch_size: int = 1000) -> tuple[int, list[NewDeadLetter]]:
    """Send the current state of every key a check found missing or behind at the target (keys the flow holds
    with a dead letter excepted: they keep their order). Returns the records accepted and the dead letters of
    those rejected, which the caller stores; the ids the target gave are kept in the xref here, as delivery keeps
    them. Keys extra at the target are left alone: the target may own them."""
    held = store.held_keys(flow)
    result = FlowResult(flow=flow, direction="outbound")
    letters: list[NewDeadLetter] = []
    for check in checks:
        keys = [key for key in check.to_resend if (check.entity, key) not in held]
        for start in range(0, len(keys), batch_size):
            rows = store.get_many(check.entity, keys[start:start + batch_size])
            pending = [Pending.of_state(row) for row in rows.values()]
            if pending:
                links: list[Link] = []
                letters += write_pending(connector, flow, {check.entity: pending}, retry or RetryPolicy(), result,
                                         store=store, links=links)
                if links:
                    with store.transaction() as tx:
                        keep_delivery(tx, flow, connector.system, links=links)
    return result.records_out, letters
