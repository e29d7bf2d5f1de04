"""Inbound: read a system's records in pages, map them to canonical records, and commit each page to the store
together with the cursor that covers it.

Full refresh: a page marked ``complete`` ends a snapshot; keys of the entity that the snapshot did not contain
become deletions. Because the keys seen so far are needed for that, a snapshot interrupted by a crash is resumed by
reading it again from its start: pages already committed are only scanned for their keys (no writes, no new
quarantine entries), then the run continues where it stopped. Nothing is lost and no effect happens twice. If the
source no longer serves the pages that were committed (the last one is not where it was), the snapshot is read
again in full instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from operator import attrgetter
from typing import Any

import msgspec

from syncfabric.config.schema import Estate, Watermark
from syncfabric.connectors import watermark as watermarks
from syncfabric.connectors.base import Connector, Page, RawRecord
from syncfabric.errors import RecordError, StoreError
from syncfabric.flows.heap import collect_per_page
from syncfabric.flows.map_worker import worker_pages
from syncfabric.flows.rename_plan import CHUNK, mapper, page_mapper
from syncfabric.flows.result import FlowResult, Progress
from syncfabric.flows.unchanged import KnownInputs, known_inputs
from syncfabric.mapping import FieldMap
from syncfabric.mapping.rules import RuleSet, describe
from syncfabric.mapping.xref import XrefClaim, conflicts
from syncfabric.model import Record
from syncfabric.store import ApplyResult, Lineage, NewQuarantine, RecordBatch, Store, Transaction, content_hashes


class InboundCheckpoint(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What an inbound flow stores as its checkpoint."""

    cursor: str | None = None
    """The connector's cursor after the last committed page."""
    snapshot_start: str | None = None
    """Full refresh in progress: the cursor the snapshot started from."""
    snapshot_pages: int = 0
    """Full refresh in progress: pages of it already committed."""
    snapshot_cursor: str | None = None
    """Full refresh in progress: the cursor of its last committed page, to recognise that page when reading again."""
    watermark: str | None = None
    """Net change by watermark: the highest value of the watermark field among the records committed so far."""


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
    rules: RuleSet | None = None,
    watermark: Watermark | None = None,
    keep_raw: bool = True,
    parallel: bool = False,
) -> FlowResult:
    """Run an inbound flow once. With ``watermark`` (net change only), the connector is asked for records changed
    since the highest committed value of the watermark field minus the overlap, instead of since its own cursor;
    a connector serving such reads returns records in ascending watermark order, so a crash resumes correctly."""
    entity = field_map.entity_cls.entity
    result = FlowResult(flow=flow_name, direction="inbound")
    saved = _load(store.checkpoint(flow_name))
    full = mode == "full"
    resuming = full and saved.snapshot_pages > 0
    snapshot_start = saved.snapshot_start if resuming else saved.cursor
    skip = saved.snapshot_pages if resuming else 0
    mark = saved.watermark
    inputs: KnownInputs | None = None
    premapped = worker_pages(store, flow_name, connector, field_map, source=source, cursor=snapshot_start,
                             batch_id=batch_id, rules=rules, keep_raw=keep_raw) if full and parallel else None
    if premapped is not None:
        pages: Iterator[Any] = premapped
    elif full:
        inputs = known_inputs(store, flow_name, field_map, rules)
        pages = (connector.read_full(source, snapshot_start) if inputs is None
                 else connector.read_full_known(source, snapshot_start, inputs))
    elif watermark is not None:
        pages = connector.read_changes(source, watermarks.since(mark, watermark.overlap_seconds))
    else:
        pages = connector.read_changes(source, snapshot_start)
    page_no = 0
    seen = inputs.seen if inputs is not None else set[str]()  # read by the connector when it skips rows
    new = True  # whether the next page's keys are expected to have no state yet: every page written inserted only
    with collect_per_page() as collect:  # a page's objects outlive many young collections
        for item in pages:
            page_no += 1
            missing: list[str] | None = None  # a complete snapshot: the live keys it does not contain, if known
            if premapped is not None:  # read and mapped by the worker process
                page, (batch, rejected, warnings, links, skipped, missing) = item
            else:
                page = item
                batch, rejected, warnings, links, skipped = _map_page(
                    page, field_map, flow_name, batch_id, rules, store, inputs, seen, keep_raw=keep_raw)
            if full:
                seen.update(skipped)
                seen.update(batch.keys)
                # A key whose row is in the snapshot but does not map is not missing: keep its last accepted state.
                seen.update(entry.record_key for entry in rejected if entry.record_key)
            committed_before = page_no <= skip
            if committed_before and (page.complete or (page_no == skip and page.cursor != saved.snapshot_cursor)):
                # The source no longer serves the pages committed before the crash (an older file arrived, the data
                # moved): read the snapshot again from its start and write every page; stored records that did not
                # change write nothing.
                getattr(pages, "close", lambda: None)()  # release the files the abandoned read holds open
                with store.transaction() as tx:
                    tx.set_checkpoint(flow_name, msgspec.json.encode(InboundCheckpoint(cursor=snapshot_start)).decode())
                return run_inbound(store, flow_name, connector, field_map, mode=mode, source=source, batch_id=batch_id,
                                   progress=progress, rules=rules, watermark=watermark, keep_raw=keep_raw,
                                   parallel=parallel)
            if committed_before:
                continue
            with store.transaction() as tx:
                batch, rejected = _link(tx, batch, rejected, links)
                applied = _write_page(tx, entity, batch, rejected, result, new=new)
                if batch.keys:  # a first load inserts without looking keys up until a page finds stored ones
                    new = applied.inserted == len(batch.keys)
                result.records_in += len(skipped)
                result.unchanged += len(skipped)
                result.warn(warnings)
                if full and page.complete:
                    if missing is None:  # the keys live when the snapshot started (else now) less those seen
                        live = inputs.live if inputs is not None else None
                        missing = [key for key in (store.live_keys(entity) if live is None else live)
                                   if key not in seen]
                    if missing:  # a snapshot speaks for its own flow: keys another flow brought are not its to delete
                        others = _keys_of_other_flows(store, entity, flow_name, missing)
                        missing = [key for key in missing if key not in others]
                    lineage = Lineage(field_map.system, "missing from complete snapshot", batch_id, field_map.version)
                    result.deleted += tx.delete(entity, missing, lineage).deleted
                    checkpoint = InboundCheckpoint(cursor=page.cursor)
                elif full:
                    checkpoint = InboundCheckpoint(cursor=snapshot_start, snapshot_start=snapshot_start,
                                                   snapshot_pages=page_no, snapshot_cursor=page.cursor)
                else:
                    if watermark is not None:
                        mark = watermarks.highest(page.records, watermark.field, mark)
                    checkpoint = InboundCheckpoint(cursor=page.cursor, watermark=mark)
                tx.set_checkpoint(flow_name, msgspec.json.encode(checkpoint).decode())
            if full and page.complete:
                page_no, skip, snapshot_start = 0, 0, page.cursor
                seen.clear()
                if inputs is not None:  # the next snapshot starts from what the store holds now, with this one's writes
                    inputs.read(store, entity)
            if page.cursor is not None:
                connector.acknowledge(source, page.cursor)
            result.checkpoint = page.cursor
            if progress is not None:
                progress(len(page.records) + len(page.problems) + len(page.unchanged))
            collect()
    result.per_entity[entity] = result.changed
    return result


class Outcome(msgspec.Struct):
    """What mapping and the data-quality rules made of one raw record: a record to store, or the reasons not to."""

    key: str = ""
    record: Record | None = None
    reasons: list[str] = []
    warnings: list[str] = []
    claims: list[XrefClaim] = []
    """Cross-reference links the record claims; stored with it, in the same transaction."""


def map_and_check(
    rows: Sequence[dict[str, Any]], field_map: FieldMap, rules: RuleSet | None, store: Store | None
) -> list[Outcome]:
    """Map raw records and check the entity's rules on those that map, one outcome per row, in order.

    Both fresh input (inbound pages) and quarantined records being replayed take this path, so a replayed record
    meets exactly the checks a new one would. References to master data are read once per page. The cross-reference
    links a record claims are checked against the store and the rows before it: a conflict rejects the record; the
    caller stores ``Outcome.claims`` of accepted records with ``tx.put_xref`` in the transaction that stores them.
    """
    outcomes: list[Outcome] = []
    pending: dict[tuple[str, str, str], str] = {}
    pending_keys: dict[tuple[str, str, str], str] = {}
    map_row = mapper(field_map)
    for data in rows:
        try:
            record, claims = map_row(data)
        except RecordError as exc:
            outcomes.append(Outcome(key=exc.key, reasons=[str(problem) for problem in exc.problems]))
            continue
        reasons = conflicts(claims, store, pending, pending_keys) if claims and store is not None else []
        if reasons:
            outcomes.append(Outcome(key=record.key, reasons=reasons))
            continue
        outcomes.append(Outcome(record.key, record, [], [], claims))
    if rules:
        mapped = [outcome for outcome in outcomes if outcome.record is not None]
        verdicts = rules.check([outcome.record for outcome in mapped if outcome.record is not None], store)
        for outcome, verdict in zip(mapped, verdicts, strict=True):
            if not verdict.violations:
                continue
            where = {"system": field_map.system, "key": outcome.key}
            outcome.warnings = [describe(problem, **where) for problem in verdict.warnings]
            if verdict.rejected:
                outcome.reasons = [describe(problem, **where) for problem in verdict.rejected]
                outcome.record = None
    return outcomes


def estate_field_map(store: Store, estate: Estate, name: str) -> FieldMap:
    """Mapping ``name`` of the estate, compiled with the estate's units and code maps, converting local times with
    the time zone of the canonical location as stored (read once per location)."""
    zones: dict[str, str | None] = {}

    def time_zone(location_id: str) -> str | None:
        if location_id not in zones:
            row = store.get("location", location_id)
            zone = msgspec.json.decode(row.payload).get("time_zone") if row and row.payload else None
            zones[location_id] = zone if isinstance(zone, str) else None
        return zones[location_id]

    return FieldMap.for_estate(estate, name, time_zones=time_zone)


def _map_page(
    page: Page, field_map: FieldMap, flow_name: str, batch_id: str, rules: RuleSet | None = None,
    store: Store | None = None, inputs: KnownInputs | None = None, seen: set[str] | frozenset[str] = frozenset(),
    *, keep_raw: bool = True,
) -> tuple[RecordBatch, list[NewQuarantine], list[str], dict[str, Links], list[str]]:
    """The page's records to store (the last row of a key wins) with their raw records (``keep_raw``), its
    rejects, warnings, xref links, and the keys of the rows skipped as unchanged (with ``inputs``: their input is
    the one their stored state was accepted from, and their key was not met in the snapshot before, ``seen``).

    A rename-only mapping without rules maps the page's rows all at once (``rename_plan.page_mapper``); a page
    with a row that plan cannot take is mapped row by row, so that each problem is reported as always."""
    links: dict[str, Links] = {}
    warnings: dict[str, list[str]] = {}
    version = field_map.version
    system, entity = field_map.system, field_map.entity_cls.entity
    rejected = [
        NewQuarantine(flow=flow_name, system=system, entity=entity,
                      reasons=[problem.reason], payload=problem.raw, location=problem.location,
                      mapping_version=version)
        for problem in page.problems
    ]
    encode = _encode
    rows: Sequence[RawRecord] = page.records
    texts: list[bytes | None] | None = None
    digests: list[str | None] | None = None
    skipped: dict[str, int] = dict(page.unchanged) if inputs is not None else {}
    origin: list[int] | None = None  # where each of ``rows`` is in the page, if not all of the page's records
    if inputs is not None:
        digests = list(map(_input_hash, rows))
        if None in digests:  # rows the connector did not look up: hash their data
            known, digest = inputs.keys, inputs.digest
            rows, texts, digests, origin = [], [], [], []
            for index, raw in enumerate(page.records):
                hashed, text = raw.input_hash, None
                if hashed is None:
                    text = encode(raw.data)
                    hashed = digest(text)
                    key = known.get(hashed)
                    if key is not None and key not in seen:
                        skipped[key] = index  # placed after the records before it (a record after it wins)
                        continue
                rows.append(raw)
                texts.append(text)
                digests.append(hashed)
                origin.append(index)
    data = list(map(_data, rows))
    plan = page_mapper(field_map) if not rules else None
    mapped = plan(data) if plan is not None else None
    accepted: list[int] | None = None  # the rows that map to ``keys``, if not all of them
    if mapped is not None:
        keys, payloads = mapped
    else:
        keys, payloads, accepted = [], [], []
        for index, (raw, outcome) in enumerate(zip(rows, map_and_check(data, field_map, rules, store), strict=True)):
            record = outcome.record
            if record is None:
                rejected.append(NewQuarantine(
                    flow=flow_name, system=system, entity=entity,
                    reasons=outcome.reasons, payload=encode(raw.data).decode(),
                    record_key=outcome.key, location=raw.location, mapping_version=version,
                ))
                continue
            key = outcome.key
            keys.append(key)
            payloads.append(encode(record))
            accepted.append(index)
            if outcome.warnings:
                warnings[key] = outcome.warnings
            elif warnings:
                warnings.pop(key, None)
            if outcome.claims:
                links[key] = (outcome.claims, NewQuarantine(
                    flow=flow_name, system=system, entity=entity, reasons=[],
                    payload=encode(raw.data).decode(), record_key=key, location=raw.location,
                    mapping_version=version))
    last = dict(zip(keys, range(len(keys)), strict=True))  # each key's last record
    for key in skipped.keys() & last.keys():  # a key both mapped and skipped in this page: its last row wins
        row = last[key] if accepted is None else accepted[last[key]]
        if skipped[key] > (row if origin is None else origin[row]):
            del last[key]  # the stored state is what the skipped row maps to
    chosen: list[int] | None = None  # the rows of the records kept, if not all rows
    if len(last) != len(keys):
        positions = list(last.values())
        keys, payloads = list(last), [payloads[position] for position in positions]
        chosen = positions if accepted is None else [accepted[position] for position in positions]
    elif accepted is not None and len(accepted) != len(rows):
        chosen = accepted
    kept = rows if chosen is None else [rows[index] for index in chosen]
    texts_of_raws = None
    if keep_raw and texts is not None:
        texts_of_raws = [texts[index] or encode(rows[index].data)
                         for index in (range(len(rows)) if chosen is None else chosen)]
    payload_texts: list[str] = []
    payload_hashes: list[str] = []
    where: list[str] = []
    raws: list[str] | None = [] if keep_raw else None
    for start in range(0, len(keys), CHUNK):  # a pass per column over a few rows at a time, which stay in cache
        stop = start + CHUNK
        part = payloads[start:stop]
        payload_texts += map(bytes.decode, part)
        payload_hashes += content_hashes(part)
        of_rows = kept[start:stop]
        where += map(_location, of_rows)
        if raws is not None:
            raw = map(encode, map(_data, of_rows)) if texts_of_raws is None else texts_of_raws[start:stop]
            raws += map(bytes.decode, raw)
    if digests is None:
        hashes: list[str | None] = [None] * len(kept)
    else:
        hashes = digests if chosen is None else [digests[index] for index in chosen]
    batch = RecordBatch(keys, payload_texts, payload_hashes, where, hashes, system, batch_id, version, flow_name,
                        raws)
    return batch, rejected, [w for key in keys for w in warnings.get(key, ())] if warnings else [], links, \
        list(skipped)


_data = attrgetter("data")
_location = attrgetter("location")
_input_hash = attrgetter("input_hash")


_encode = msgspec.json.Encoder().encode


Links = tuple[list[XrefClaim], NewQuarantine]
"""A record's cross-reference claims, and the quarantine entry it becomes if the store refuses one of them."""


def _link(
    tx: Transaction, batch: Any, rejected: list[NewQuarantine], links: dict[str, Links]
) -> tuple[Any, list[NewQuarantine]]:
    """Store each record's xref links in the page's transaction; a record whose link conflicts is quarantined."""
    if not links:
        return batch, rejected
    refused: set[str] = set()
    for key, (claims, entry) in links.items():
        for claim in claims:
            try:
                tx.put_xref(claim.system, claim.entity, claim.external_id, claim.key)
            except StoreError as exc:
                refused.add(key)
                rejected = [*rejected, dataclasses.replace(entry, reasons=[f"xref conflict: {exc}"])]
                break
    if isinstance(batch, list):  # records one by one (syncfabric.flows.listen)
        return [record for record in batch if record.key not in refused], rejected
    return (batch.without(refused) if refused else batch), rejected


def _write_page(
    tx: Transaction, entity: str, batch: Any, rejected: list[NewQuarantine], result: FlowResult, *,
    new: bool = False, applied: ApplyResult | None = None,
) -> ApplyResult:
    """Apply a page and count it in ``result``, with its rejected records quarantined; ``applied``: the page was
    applied already (:meth:`Transaction.insert_new <syncfabric.store.Transaction.insert_new>`), only count it."""
    if isinstance(batch, list):  # records one by one (syncfabric.flows.listen)
        applied = tx.apply(entity, batch)
        result.records_in += len(batch) + len(rejected)
    else:
        if applied is None:
            applied = tx.apply_batch(entity, batch, new=new)
        result.records_in += len(batch.keys) + len(rejected)
    result.inserted += applied.inserted
    result.updated += applied.updated
    result.unchanged += applied.unchanged
    if rejected:
        tx.add_quarantine(rejected)
        result.quarantined += len(rejected)
    return applied


def _keys_of_other_flows(store: Store, entity: str, flow_name: str, keys: list[str]) -> set[str]:
    """Those of ``keys`` whose current record another inbound flow brought (by the raw source record kept)."""
    return {row.key for row in store.sources(entity, keys=keys) if row.flow != flow_name}


def _load(text: str | None) -> InboundCheckpoint:
    return msgspec.json.decode(text, type=InboundCheckpoint) if text else InboundCheckpoint()
