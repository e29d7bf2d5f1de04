"""Outbound: deliver canonical records to a target system, idempotently, then move the target's checkpoint.

Net-change (``changes``) sends the change-log entries after the target's checkpoint; the checkpoint moves only after
the target confirmed the batch, so a crash re-sends at most one batch, which idempotent targets absorb. Full
(``full``) sends the current state of each entity. Both deliver entities in dependency order (locations and items
before item-locations, before inventory and orders), and changes of one key in the order they were recorded.
Records the target rejects go to quarantine with its reason; transient failures are retried by the policy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import msgspec

from syncfabric.connectors.base import Connector, OutboundRecord
from syncfabric.flows.result import FlowResult, Progress
from syncfabric.flows.retry import RetryPolicy, call_with_retry
from syncfabric.model import ENTITIES
from syncfabric.store import Change, NewQuarantine, Op, StateRow, Store, Transaction


def dependency_order(entities: Iterable[str]) -> list[str]:
    """Entities in the order the model declares them: what others refer to comes first."""
    order = {name: index for index, name in enumerate(ENTITIES)}
    return sorted(set(entities), key=lambda name: order.get(name, len(order)))


def run_outbound(
    store: Store,
    flow_name: str,
    connector: Connector,
    *,
    entities: Sequence[str],
    mode: str,
    batch_size: int = 1000,
    retry: RetryPolicy | None = None,
    progress: Progress | None = None,
) -> FlowResult:
    result = FlowResult(flow=flow_name, direction="outbound")
    retry = retry or RetryPolicy()
    if mode == "full":
        _send_full(store, flow_name, connector, dependency_order(entities), batch_size, retry, result, progress)
    else:
        _send_changes(store, flow_name, connector, entities, batch_size, retry, result, progress)
    return result


def _send_changes(
    store: Store, flow_name: str, connector: Connector, entities: Sequence[str], batch_size: int,
    retry: RetryPolicy, result: FlowResult, progress: Progress | None,
) -> None:
    after = int(store.checkpoint(flow_name) or 0)
    while changes := store.changes(after, entities=list(entities), limit=batch_size):
        latest: dict[tuple[str, str], Change] = {}
        for change in changes:  # the newest change of a key supersedes older ones in the same batch
            latest.pop((change.entity, change.key), None)
            latest[(change.entity, change.key)] = change
        by_entity: dict[str, list[OutboundRecord]] = {}
        for change in latest.values():
            by_entity.setdefault(change.entity, []).append(_from_change(change))
        rejected, links = _deliver(store, connector, flow_name, by_entity, retry, result)
        after = changes[-1].seq
        with store.transaction() as tx:
            if rejected:
                tx.add_quarantine(rejected)
            _put_links(tx, connector.system, links)
            tx.set_checkpoint(flow_name, str(after))
        result.checkpoint = str(after)
        if progress is not None:
            progress(len(changes))


def _send_full(
    store: Store, flow_name: str, connector: Connector, entities: list[str], batch_size: int,
    retry: RetryPolicy, result: FlowResult, progress: Progress | None,
) -> None:
    head = store.head()
    for entity in entities:
        batch: list[OutboundRecord] = []
        rows = store.current(entity)
        for row in rows:
            batch.append(_from_state(row))
            if len(batch) >= batch_size:
                _deliver_and_record(store, connector, flow_name, {entity: batch}, retry, result, progress)
                batch = []
        if batch:
            _deliver_and_record(store, connector, flow_name, {entity: batch}, retry, result, progress)
    with store.transaction() as tx:
        tx.set_checkpoint(flow_name, str(head))
    result.checkpoint = str(head)


def _deliver_and_record(
    store: Store, connector: Connector, flow_name: str, by_entity: dict[str, list[OutboundRecord]],
    retry: RetryPolicy, result: FlowResult, progress: Progress | None,
) -> None:
    rejected, links = _deliver(store, connector, flow_name, by_entity, retry, result)
    if rejected or links:
        with store.transaction() as tx:
            tx.add_quarantine(rejected)
            _put_links(tx, connector.system, links)
    if progress is not None:
        progress(sum(len(records) for records in by_entity.values()))


def _deliver(
    store: Store, connector: Connector, flow_name: str, by_entity: dict[str, list[OutboundRecord]],
    retry: RetryPolicy, result: FlowResult,
) -> tuple[list[NewQuarantine], list[Link]]:
    rejected: list[NewQuarantine] = []
    links: list[Link] = []
    for entity in dependency_order(by_entity):
        records = by_entity[entity]
        if connector.links_external_ids:
            records = [dataclasses.replace(record, external_id=store.xref_external(connector.system, entity,
                                                                                   record.key))
                       for record in records]
        outcome = call_with_retry(lambda entity=entity, records=records: connector.write(entity, records), retry)
        result.records_out += len(outcome.accepted)
        result.per_entity[entity] = result.per_entity.get(entity, 0) + len(outcome.accepted)
        payloads = {record.key: record.payload for record in records}
        for key, reason in outcome.rejected.items():
            rejected.append(NewQuarantine(
                flow=flow_name, system=connector.system, entity=entity, reasons=[reason],
                payload=msgspec.json.encode(payloads.get(key)).decode(), record_key=key,
                location=f"target {connector.system}",
            ))
        result.quarantined += len(outcome.rejected)
        links += [(entity, external_id, key) for key, external_id in outcome.links.items()]
    return rejected, links


Link = tuple[str, str, str]
"""(entity, the target's id, canonical key): what a written record became at the target."""


def _put_links(tx: Transaction, system: str, links: list[Link]) -> None:
    for entity, external_id, key in links:
        tx.put_xref(system, entity, external_id, key)


def _from_change(change: Change) -> OutboundRecord:
    payload = None if change.op is Op.DELETE or change.payload is None else msgspec.json.decode(change.payload)
    return OutboundRecord(key=change.key, version=change.version, payload=payload)


def _from_state(row: StateRow) -> OutboundRecord:
    payload = None if row.deleted or row.payload is None else msgspec.json.decode(row.payload)
    return OutboundRecord(key=row.key, version=row.version, payload=payload)
