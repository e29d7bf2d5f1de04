"""Outbound: deliver canonical records to a target system, idempotently, then move the target's checkpoint.

Net-change (``changes``) sends the change-log entries after the target's checkpoint; the checkpoint moves only after
the target confirmed the batch, so a crash re-sends at most one batch, which idempotent targets absorb. Full
(``full``) sends the current state of each entity. Both deliver entities in dependency order (locations and items
before item-locations, before inventory and orders), and changes of one key in the order they were recorded.
Plan-cut (``plan_cut``) sends the state of every entity of the flow as of one change-log sequence, taken when the
cut starts: a consistent snapshot across entities however much inbound flows write meanwhile. It resumes after the
last batch the target confirmed.
Records the target rejects go to quarantine with its reason; transient failures are retried by the policy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence

import msgspec

from syncfabric.connectors.base import Connector, OutboundRecord
from syncfabric.flows.result import FlowResult, Progress
from syncfabric.flows.retry import RetryPolicy, call_with_retry
from syncfabric.model import ENTITIES, Record
from syncfabric.store import Change, NewQuarantine, Op, StateRow, Store, Transaction


def dependency_order(entities: Iterable[str], model: Mapping[str, type[Record]] = ENTITIES) -> list[str]:
    """Entities so that each comes after every entity it refers to (the model's ``references``, followed through
    entities not in the list too); among those free to go, master data before transactions, planning data and
    events, then the model's own order. Locations and items come before
    item-locations, and those before inventory and orders. Unknown names go last, in the order given."""
    rank = _MODEL_RANK if model is ENTITIES and _MODEL_RANK else _rank(model)
    return sorted(dict.fromkeys(entities), key=lambda name: rank.get(name, len(rank)))


_DOMAINS = {"master": 0, "transactions": 1, "planning": 2, "events": 3}


def _rank(model: Mapping[str, type[Record]]) -> dict[str, int]:
    position = {name: index for index, name in enumerate(model)}
    needs = {name: {ref for ref in cls.references.values() if ref != name and ref in model}
             for name, cls in model.items()}
    placed: list[str] = []
    done: set[str] = set()
    while len(done) < len(needs):
        ready = [name for name in needs if name not in done and needs[name] <= done]
        if not ready:  # a cycle of references: keep the model's order for what is left
            ready = [name for name in needs if name not in done]
        name = min(ready, key=lambda name: (_DOMAINS.get(model[name].domain, len(_DOMAINS)), position[name]))
        done.add(name)
        placed.append(name)
    return {name: index for index, name in enumerate(placed)}


_MODEL_RANK: dict[str, int] = {}
_MODEL_RANK.update(_rank(ENTITIES))


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
    elif mode == "plan_cut":
        _send_plan_cut(store, flow_name, connector, dependency_order(entities), batch_size, retry, result, progress)
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
        links: list[Link] = []
        rejected = _deliver(connector, flow_name, by_entity, retry, result, links, store=store)
        after = changes[-1].seq
        with store.transaction() as tx:
            if rejected:
                tx.add_quarantine(rejected)
            _keep_links(tx, connector.system, links)
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


class PlanCut(msgspec.Struct, kw_only=True):
    """A plan-cut in progress, as the flow's checkpoint: the cut's sequence, and the last key the target
    confirmed in the entity being sent. A finished cut leaves the plain sequence as the checkpoint."""

    cut: int
    entity: str
    after: str
    since: int = 0
    """The checkpoint before this cut: deletions after it are sent as deletions."""


def _send_plan_cut(
    store: Store, flow_name: str, connector: Connector, entities: list[str], batch_size: int,
    retry: RetryPolicy, result: FlowResult, progress: Progress | None,
) -> None:
    """Send the state of every entity as of one change-log sequence, taken when the cut starts (or resumed from the
    checkpoint of a cut a crash interrupted), in dependency order. Keys deleted since the target's previous
    checkpoint are sent as deletions, so the target ends up holding exactly the cut. The checkpoint moves after
    each batch the target confirmed."""
    saved = store.checkpoint(flow_name)
    resumed = msgspec.json.decode(saved, type=PlanCut) if saved and saved.startswith("{") else None
    previous = resumed.since if resumed else int(saved or 0)
    cut = resumed.cut if resumed else store.head()
    start = entities.index(resumed.entity) if resumed and resumed.entity in entities else 0
    for entity in entities[start:]:
        after = resumed.after if resumed and entity == resumed.entity else None
        batch: list[OutboundRecord] = []

        def send(batch: list[OutboundRecord], entity: str = entity) -> None:
            links: list[Link] = []
            rejected = _deliver(connector, flow_name, {entity: batch}, retry, result, links, store=store)
            mark = PlanCut(cut=cut, entity=entity, after=batch[-1].key, since=previous)
            with store.transaction() as tx:
                if rejected:
                    tx.add_quarantine(rejected)
                _keep_links(tx, connector.system, links)
                tx.set_checkpoint(flow_name, msgspec.json.encode(mark).decode())
            if progress is not None:
                progress(len(batch))

        for row in _rows_after(store, entity, cut, after):
            if row.deleted and row.last_seq <= previous:
                continue  # deleted before the target's last checkpoint: it never held it since
            batch.append(_from_state(row))
            if len(batch) >= batch_size:
                send(batch)
                batch = []
        if batch:
            send(batch)
    with store.transaction() as tx:
        tx.set_checkpoint(flow_name, str(cut))
    result.checkpoint = str(cut)


def _rows_after(store: Store, entity: str, cut: int, after: str | None) -> Iterator[StateRow]:
    """The entity's rows as of ``cut`` that follow key ``after`` (all of them when ``after`` is None, or when that
    key is not in the cut: then the entity is sent again, which idempotent targets absorb)."""
    if after is not None:
        rows = store.current_as_of(entity, cut, include_deleted=True)
        for row in rows:
            if row.key == after:
                yield from rows
                return
    yield from store.current_as_of(entity, cut, include_deleted=True)


def _deliver_and_record(
    store: Store, connector: Connector, flow_name: str, by_entity: dict[str, list[OutboundRecord]],
    retry: RetryPolicy, result: FlowResult, progress: Progress | None,
) -> None:
    links: list[Link] = []
    rejected = _deliver(connector, flow_name, by_entity, retry, result, links, store=store)
    if rejected or links:
        with store.transaction() as tx:
            tx.add_quarantine(rejected)
            _keep_links(tx, connector.system, links)
    if progress is not None:
        progress(sum(len(records) for records in by_entity.values()))


def _deliver(
    connector: Connector, flow_name: str, by_entity: dict[str, list[OutboundRecord]], retry: RetryPolicy,
    result: FlowResult, links: list[Link] | None = None, *, store: Store | None = None,
) -> list[NewQuarantine]:
    """Write each entity's records; ``links`` collects the ids the target gave them (``WriteOutcome.links``).
    A connector that ``links_external_ids`` gets the id each record is already linked to, from ``store``."""
    rejected: list[NewQuarantine] = []
    for entity in dependency_order(by_entity):
        records = by_entity[entity]
        if store is not None and connector.links_external_ids:
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
        if links is not None:
            links.extend((entity, external, key) for key, external in outcome.links.items())
    return rejected


Link = tuple[str, str, str]
"""(entity, the target's id, canonical key)."""


def _keep_links(tx: Transaction, system: str, links: list[Link]) -> None:
    for entity, external, key in links:
        tx.put_xref(system, entity, external, key)


def _from_change(change: Change) -> OutboundRecord:
    payload = None if change.op is Op.DELETE or change.payload is None else msgspec.json.decode(change.payload)
    return OutboundRecord(key=change.key, version=change.version, payload=payload)


def _from_state(row: StateRow) -> OutboundRecord:
    payload = None if row.deleted or row.payload is None else msgspec.json.decode(row.payload)
    return OutboundRecord(key=row.key, version=row.version, payload=payload)
