"""Inbound: read a system's records in pages, map them to canonical records, and commit each page to the store
together with the cursor that covers it.

Full refresh: a page marked ``complete`` ends a snapshot; keys of the entity that the snapshot did not contain
become deletions. Because the keys seen so far are needed for that, a snapshot interrupted by a crash is resumed by
reading it again from its start: pages already committed are only scanned for their keys (no writes, no new
quarantine entries), then the run continues where it stopped. Nothing is lost and no effect happens twice.
"""

from __future__ import annotations

import msgspec

from syncfabric.connectors.base import Connector, Page
from syncfabric.errors import RecordError
from syncfabric.flows.result import FlowResult, Progress
from syncfabric.mapping import FieldMap
from syncfabric.store import IncomingRecord, Lineage, NewQuarantine, Store, Transaction


class InboundCheckpoint(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What an inbound flow stores as its checkpoint."""

    cursor: str | None = None
    """The connector's cursor after the last committed page."""
    snapshot_start: str | None = None
    """Full refresh in progress: the cursor the snapshot started from."""
    snapshot_pages: int = 0
    """Full refresh in progress: pages of it already committed."""


def run_inbound(
    store: Store,
    flow_name: str,
    connector: Connector,
    field_map: FieldMap,
    *,
    mode: str,
    source: str,
    batch_id: str = "",
    progress: Progress | None = None,
) -> FlowResult:
    entity = field_map.entity_cls.entity
    result = FlowResult(flow=flow_name, direction="inbound")
    saved = _load(store.checkpoint(flow_name))
    full = mode == "full"
    resuming = full and saved.snapshot_pages > 0
    snapshot_start = saved.snapshot_start if resuming else saved.cursor
    skip = saved.snapshot_pages if resuming else 0
    pages = connector.read_full(source, snapshot_start) if full else connector.read_changes(source, snapshot_start)
    page_no, seen = 0, set[str]()
    for page in pages:
        page_no += 1
        records, rejected = _map_page(page, field_map, flow_name, batch_id)
        if full:
            seen.update(record.key for record in records)
        committed_before = page_no <= skip
        if committed_before and not page.complete:
            continue
        with store.transaction() as tx:
            if not committed_before:
                _write_page(tx, entity, records, rejected, result)
            if full and page.complete:
                missing = [key for key in _live_keys(store, entity) if key not in seen]
                lineage = Lineage(field_map.system, "missing from complete snapshot", batch_id, field_map.version)
                result.deleted += tx.delete(entity, missing, lineage).deleted
                checkpoint = InboundCheckpoint(cursor=page.cursor)
            elif full:
                checkpoint = InboundCheckpoint(cursor=snapshot_start, snapshot_start=snapshot_start,
                                               snapshot_pages=page_no)
            else:
                checkpoint = InboundCheckpoint(cursor=page.cursor)
            tx.set_checkpoint(flow_name, msgspec.json.encode(checkpoint).decode())
        if full and page.complete:
            page_no, skip, seen, snapshot_start = 0, 0, set(), page.cursor
        if page.cursor is not None:
            connector.acknowledge(source, page.cursor)
        result.checkpoint = page.cursor
        if progress is not None:
            progress(len(page.records) + len(page.problems))
    result.per_entity[entity] = result.changed
    return result


def _map_page(
    page: Page, field_map: FieldMap, flow_name: str, batch_id: str
) -> tuple[list[IncomingRecord], list[NewQuarantine]]:
    by_key: dict[str, IncomingRecord] = {}
    rejected = [
        NewQuarantine(flow=flow_name, system=field_map.system, entity=field_map.entity_cls.entity,
                      reasons=[problem.reason], payload=problem.raw, location=problem.location)
        for problem in page.problems
    ]
    for raw in page.records:
        try:
            record = field_map.apply(raw.data)
        except RecordError as exc:
            rejected.append(NewQuarantine(
                flow=flow_name, system=field_map.system, entity=field_map.entity_cls.entity,
                reasons=[str(problem) for problem in exc.problems], payload=msgspec.json.encode(raw.data).decode(),
                record_key=exc.key, location=raw.location,
            ))
            continue
        lineage = Lineage(field_map.system, raw.location, batch_id, field_map.version)
        by_key[record.key] = IncomingRecord(record.key, msgspec.json.encode(record), lineage)
    return list(by_key.values()), rejected


def _write_page(
    tx: Transaction, entity: str, records: list[IncomingRecord], rejected: list[NewQuarantine], result: FlowResult
) -> None:
    applied = tx.apply(entity, records)
    result.records_in += len(records) + len(rejected)
    result.inserted += applied.inserted
    result.updated += applied.updated
    result.unchanged += applied.unchanged
    if rejected:
        tx.add_quarantine(rejected)
        result.quarantined += len(rejected)


def _live_keys(store: Store, entity: str) -> list[str]:
    return [row.key for row in store.current(entity)]


def _load(text: str | None) -> InboundCheckpoint:
    return msgspec.json.decode(text, type=InboundCheckpoint) if text else InboundCheckpoint()
