"""The quarantine workflow: fix a rejected record, replay it, or discard it; every step goes into its history.

A replayed record takes the inbound path of its flow (:func:`~syncfabric.flows.inbound.map_and_check`): the
flow's current mapping and the estate's current rules. So a record is fixed either by editing its raw payload
(:func:`edit_entry`) or by fixing the mapping or the rules and replaying it as it is. One that fails again stays
open with its new reasons.

Each flow's replayed records commit in one transaction with their status and history: a crash replays nothing
twice and loses no step.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from syncfabric.config.schema import Estate
from syncfabric.errors import StoreError
from syncfabric.flows.inbound import Outcome, estate_field_map, map_and_check
from syncfabric.mapping import FieldMap
from syncfabric.mapping.rules import RuleSet
from syncfabric.store import (
    IncomingRecord,
    Lineage,
    NewQuarantineEvent,
    NewSource,
    QuarantineAction,
    QuarantineEntry,
    QuarantineStatus,
    Store,
    Transaction,
)


@dataclass
class ReplayResult:
    """What a replay did, per quarantine entry id."""

    replayed: list[int] = field(default_factory=list)
    failed: dict[int, list[str]] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)
    """Entries not replayed at all, with why (not open, flow gone)."""
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    warned: int = 0


def replay_entries(
    store: Store, estate: Estate, entries: Sequence[QuarantineEntry], *, actor: str = "", force: bool = False
) -> ReplayResult:
    """Replay quarantined records through their flows' mapping and rules; deliver those that pass.

    A record whose key took a newer accepted version after it was quarantined is not replayed over it (that would
    undo the newer change) unless ``force`` says so: it fails with that reason and can be discarded.
    """
    result = ReplayResult()
    by_flow: dict[str, list[QuarantineEntry]] = {}
    for entry in entries:
        if entry.status is not QuarantineStatus.OPEN:
            result.skipped[entry.id] = f"entry is {entry.status.value}, not open"
        else:
            by_flow.setdefault(entry.flow, []).append(entry)
    for flow_name, flow_entries in by_flow.items():
        field_map = _field_map(store, estate, flow_name)
        if isinstance(field_map, str):
            result.skipped.update(dict.fromkeys((e.id for e in flow_entries), field_map))
            with store.transaction() as tx:
                tx.add_quarantine_events([
                    NewQuarantineEvent(e.id, QuarantineAction.REPLAY_FAILED, field_map, actor) for e in flow_entries
                ])
            continue
        _replay_flow(store, estate, field_map, flow_entries, actor, result, force)
    return result


def _field_map(store: Store, estate: Estate, flow_name: str) -> FieldMap | str:
    flow = estate.flows.get(flow_name)
    if flow is None or flow.direction != "inbound" or flow.mapping is None:
        return f"flow {flow_name!r} is not an inbound flow of this estate"
    return estate_field_map(store, estate, flow.mapping)


def _replay_flow(
    store: Store, estate: Estate, field_map: FieldMap, entries: list[QuarantineEntry], actor: str,
    result: ReplayResult, force: bool,
) -> None:
    entity = field_map.entity_cls.entity
    rows: list[dict[str, Any]] = []
    decodable: list[QuarantineEntry] = []
    outcomes: dict[int, Outcome] = {}
    for entry in entries:
        try:
            data = msgspec.json.decode(entry.payload)
        except msgspec.DecodeError:
            data = None
        if isinstance(data, dict):
            rows.append(data)
            decodable.append(entry)
        else:
            outcomes[entry.id] = Outcome(key=entry.record_key, reasons=[
                "the raw payload is not a JSON object: fix it with `quarantine edit`, or discard it"])
    checked = map_and_check(rows, field_map, RuleSet.for_entity(estate.rules, entity), store)
    outcomes.update(zip((entry.id for entry in decodable), checked, strict=True))
    if not force:
        _refuse_superseded(store, entity, entries, outcomes)
    batch_id = f"replay-{uuid.uuid4().hex[:8]}"
    accepted: dict[str, tuple[QuarantineEntry, IncomingRecord]] = {}
    for entry in entries:  # entries come oldest first: for a key replayed twice, the newest entry wins
        outcome = outcomes[entry.id]
        if outcome.record is not None:
            lineage = Lineage(field_map.system, entry.location or f"quarantine #{entry.id}", batch_id,
                              field_map.version)
            accepted[outcome.key] = (entry, IncomingRecord(outcome.key, msgspec.json.encode(outcome.record), lineage))
    events: list[NewQuarantineEvent] = []
    with store.transaction() as tx:
        for key, (entry, _) in list(accepted.items()):
            if not _link(tx, outcomes[entry.id]):
                del accepted[key]
        delivered = {entry.id for entry, _ in accepted.values()}
        applied = tx.apply(entity, [record for _, record in accepted.values()])
        if estate.flows[entries[0].flow].keep_raw:
            tx.put_sources(entity, [NewSource(key, accepted[key][0].flow, accepted[key][0].payload,
                                              accepted[key][1].lineage.source_id) for key in applied.changed_keys])
        for entry in entries:
            outcome = outcomes[entry.id]
            if entry.id in delivered:
                detail = f"delivered {entity} {outcome.key}"
                if outcome.warnings:
                    detail += "; warnings: " + "; ".join(outcome.warnings)
                events.append(NewQuarantineEvent(entry.id, QuarantineAction.REPLAYED, detail, actor))
                result.replayed.append(entry.id)
                result.warned += len(outcome.warnings)
            elif outcome.record is not None:
                reason = f"superseded by a newer entry of key {outcome.key} replayed with it"
                events.append(NewQuarantineEvent(entry.id, QuarantineAction.REPLAYED, reason, actor))
                result.replayed.append(entry.id)
            else:
                tx.update_quarantine(entry.id, reasons=outcome.reasons, mapping_version=field_map.version)
                events.append(NewQuarantineEvent(entry.id, QuarantineAction.REPLAY_FAILED,
                                                 "\n".join(outcome.reasons), actor))
                result.failed[entry.id] = outcome.reasons
        tx.set_quarantine_status([e.id for e in entries if e.id in set(result.replayed)], QuarantineStatus.REPLAYED)
        tx.add_quarantine_events(events)
    result.inserted += applied.inserted
    result.updated += applied.updated
    result.unchanged += applied.unchanged


def _link(tx: Transaction, outcome: Outcome) -> bool:
    """Store the record's cross-reference links with it, as inbound does; a conflicting link fails the record."""
    for claim in outcome.claims:
        try:
            tx.put_xref(claim.system, claim.entity, claim.external_id, claim.key)
        except StoreError as exc:
            outcome.record = None
            outcome.reasons = [f"xref conflict: {exc}"]
            return False
    return True


def _refuse_superseded(
    store: Store, entity: str, entries: list[QuarantineEntry], outcomes: dict[int, Outcome]
) -> None:
    keys = [outcomes[entry.id].key for entry in entries if outcomes[entry.id].record is not None]
    current = store.get_many(entity, keys)
    for entry in entries:
        outcome = outcomes[entry.id]
        row = current.get(outcome.key) if outcome.record is not None else None
        if row is not None and row.updated_at > entry.created_at:
            outcome.record = None
            outcome.reasons = [
                f"{entity} {outcome.key} has a newer version (v{row.version}, {row.updated_at:%Y-%m-%d %H:%M:%S} UTC) "
                "than this record: replaying it would undo that change; discard it, or replay with --force"]


def edit_entry(store: Store, entry_id: int, changes: Mapping[str, Any], *, actor: str = "") -> QuarantineEntry:
    """Set fields of an open entry's raw payload (``"QTY": "5"``; a dotted name reaches into nested objects)."""
    entry = _open_entry(store, entry_id)
    try:
        data = msgspec.json.decode(entry.payload) if entry.payload.strip() else {}
    except msgspec.DecodeError:
        data = None
    if not isinstance(data, dict):
        raise StoreError(f"quarantine entry {entry_id}: its raw payload is not a JSON object and cannot be edited "
                         "field by field")
    described = []
    for name, value in changes.items():
        target = data
        *parents, last = name.split(".") if name not in data else [name]
        for parent in parents:
            child = target.get(parent)
            if not isinstance(child, dict):
                child = target[parent] = {}
            target = child
        before = target.get(last)
        target[last] = value
        described.append(f"{name}: {before!r} -> {value!r}")
    with store.transaction() as tx:
        tx.update_quarantine(entry_id, payload=msgspec.json.encode(data).decode())
        tx.add_quarantine_events([NewQuarantineEvent(entry_id, QuarantineAction.EDITED, "; ".join(described), actor)])
    return store.quarantine(status=None, ids=[entry_id])[0]


def discard_entries(store: Store, entries: Sequence[QuarantineEntry], *, note: str = "", actor: str = "") -> list[int]:
    """Close open entries without replaying them; returns the ids discarded."""
    ids = [entry.id for entry in entries if entry.status is QuarantineStatus.OPEN]
    if ids:
        with store.transaction() as tx:
            tx.set_quarantine_status(ids, QuarantineStatus.DISCARDED)
            tx.add_quarantine_events([NewQuarantineEvent(i, QuarantineAction.DISCARDED, note, actor) for i in ids])
    return ids


def _open_entry(store: Store, entry_id: int) -> QuarantineEntry:
    found = store.quarantine(status=None, ids=[entry_id])
    if not found:
        raise StoreError(f"no quarantine entry {entry_id}")
    if found[0].status is not QuarantineStatus.OPEN:
        raise StoreError(f"quarantine entry {entry_id} is {found[0].status.value}, not open")
    return found[0]
