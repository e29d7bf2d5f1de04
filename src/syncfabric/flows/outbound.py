"""Outbound: deliver canonical records to a target system, idempotently, then move the target's checkpoint.

Net-change (``changes``) sends the change-log entries after the target's checkpoint; the checkpoint moves only after
the target confirmed the batch, so a crash re-sends at most one batch, which idempotent targets absorb. Full
(``full``) sends the current state of each entity. Both deliver entities in dependency order (locations and items
before item-locations, before inventory and orders), and changes of one key in the order they were recorded.
Plan-cut (``plan_cut``) sends the state of every entity of the flow as of one change-log sequence, taken when the
cut starts: a consistent snapshot across entities however much inbound flows write meanwhile. It resumes after the
last batch the target confirmed.
Records the target rejects go to the dead-letter store with its reason and their attempt history, and hold back
later changes of their key (never of other keys) until they are replayed or discarded
(:mod:`syncfabric.flows.deadletters`); transient failures are retried by the flow's policy. A target that answers
later (an import job's reject file) has its refusals read into dead letters at the start of each run
(:mod:`syncfabric.flows.refusals`).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import msgspec

from syncfabric.connectors.base import Connector, OutboundRecord, WriteOutcome
from syncfabric.errors import ConnectorError, PermanentError, TransientError
from syncfabric.flows.refusals import collect_refusals
from syncfabric.flows.result import FlowResult, Progress
from syncfabric.flows.retry import RetryPolicy, Stopped, call_with_retry
from syncfabric.model import ENTITIES, Record
from syncfabric.observe import delivery_log
from syncfabric.store import Attempt, Change, NewDeadLetter, Op, StateRow, Store, Transaction

log = logging.getLogger(__name__)

OnRetry = Callable[[int, TransientError, float], None]
"""Told of each retry: the attempt that failed, its error, and the seconds waited before the next one."""
Probe = Callable[[], bool]
"""Whether the target is healthy right now (it answers a cheap request)."""


class Pending(msgspec.Struct, frozen=True, gc=False):
    """A record on its way to the target, with the change-log entry it comes from (a msgspec Struct: one is built
    per delivered change; untracked by the garbage collector, as :class:`~syncfabric.store.Change` is: nothing it
    holds refers back to it)."""

    entity: str
    record: OutboundRecord
    seq: int
    recorded_at: dt.datetime | None = None
    """When the store recorded the change: the source time of a record that carries none of its own."""

    @classmethod
    def of_change(cls, change: Change) -> Pending:
        return cls.of_changes([change])[0]

    @classmethod
    def of_changes(cls, changes: Iterable[Change]) -> list[Pending]:
        """One per change, in one comprehension (a batch's are built together: no call per change)."""
        # The payload read once, and Op.DELETE not looked up on its class each time (an enum member's lookup costs as
        # much as building the record).
        decode, delete, record = _decode, _DELETE, OutboundRecord
        return [cls(change.entity, record(change.key, change.version,
                                          None if change.payload is None or change.op is delete
                                          else decode(change.payload)), change.seq, change.recorded_at)
                for change in changes]

    @classmethod
    def of_state(cls, row: StateRow) -> Pending:
        return cls(row.entity, _from_state(row), row.last_seq, row.updated_at)


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
    result.dead_lettered += collect_refusals(store, flow_name, connector, entities)  # answers since the last run
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
    while deliver_next(store, flow_name, connector, entities, batch_size=batch_size, retry=retry, result=result):
        if progress is not None:
            progress(result.last_batch)


def deliver_next(
    store: Store, flow_name: str, connector: Connector, entities: Sequence[str], *, batch_size: int,
    retry: RetryPolicy, result: FlowResult, on_retry: OnRetry | None = None, probe: Probe | None = None,
) -> int:
    """Deliver the next batch of changes after the flow's checkpoint, then move the checkpoint past it.

    Returns how many change-log entries the batch covered: 0 when the flow is caught up. A batch run and a
    continuous consumer (:mod:`syncfabric.flows.stream`) both advance a flow one call of this at a time.

    Changes of a key the flow holds (it has an open dead letter) are parked as dead letters behind it, so that the
    key's order holds; other keys go on. Records the target rejects become dead letters, and hold their keys from
    then on. A write that fails as a whole (after its retries) raises, and the checkpoint stays, unless ``probe``
    is given: then the batch is tried again one record at a time, and a record that still fails while ``probe``
    says the target is healthy becomes a dead letter (a poison record); when the target is not healthy, it raises.
    """
    # A plan-cut interrupted before the flow was switched to net change: send what changed since the cut's start.
    after, _ = _saved(store, flow_name)
    changes = store.changes(after, entities=list(entities), limit=batch_size)
    if not changes:
        result.last_batch = 0
        return 0
    deliver_changes(store, flow_name, connector, changes, retry=retry, result=result, on_retry=on_retry, probe=probe,
                    checkpoints={flow_name: str(changes[-1].seq)})
    result.checkpoint = str(changes[-1].seq)
    return len(changes)


def deliver_changes(
    store: Store, flow_name: str, connector: Connector, changes: Sequence[Change], *, retry: RetryPolicy,
    result: FlowResult, checkpoints: Mapping[str, str], on_retry: OnRetry | None = None, probe: Probe | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Deliver a batch of change-log entries (the step of :func:`deliver_next`, and of a bus consumer's batch), then
    commit their dead letters, the target's ids and ``checkpoints`` in one transaction. ``stop`` set while it waits
    to retry (or between the records of a batch written one by one) raises
    :class:`~syncfabric.flows.retry.Stopped`, and nothing of the batch is committed."""
    held = store.held_keys(flow_name)
    letters: list[NewDeadLetter] = []
    todo = newest(changes)
    if held:
        kept: list[Change] = []
        for change in todo:
            first = held.get((change.entity, change.key))
            if first is None:
                kept.append(change)
                continue
            reason = f"held behind dead letter #{first} of the same key, so that the key's changes stay in order"
            letters.append(_dead_letter(flow_name, connector.system, Pending.of_change(change), reason,
                                        [Attempt(_now(), "held", reason)], held_by=first))
        todo = kept
    by_entity = {entity: Pending.of_changes(group) for entity, group in by_entity_of(todo).items()}
    links: list[Link] = []
    confirmed: list[tuple[str, Pending]] = []
    letters += _deliver(connector, flow_name, by_entity, retry, result, on_retry, probe, links=links,
                        confirmed=confirmed, store=store, stop=stop)
    # Without waiting for the disk: losing this commit to a power cut loses the checkpoints with it, and the batch
    # goes to the idempotent target again. Durable when it holds dead letters (a bus that took the acknowledgement,
    # NATS, would not send the batch again) or ids the target gave (a re-send without them would create twice).
    _commit(store, flow_name, connector.system, letters, links, confirmed, result, checkpoints,
            durable=bool(letters or links))
    if letters:
        log.warning("%s: %d changes dead-lettered for %s (keys %s)", flow_name, len(letters), connector.system,
                    ", ".join(sorted({letter.record_key for letter in letters})[:10]))
    result.last_batch = len(changes)


def newest(changes: Sequence[Change]) -> Sequence[Change]:
    """The newest change of each key (it supersedes older ones in the same batch), in the order of the batch: a
    batch of distinct keys, the usual one, as it is."""
    if len({change.key for change in changes}) == len(changes):  # distinct keys: distinct (entity, key) too
        return changes
    last = {(change.entity, change.key): at for at, change in enumerate(changes)}
    if len(last) == len(changes):  # a key of two entities
        return changes
    return [changes[at] for at in sorted(last.values())]


def by_entity_of(changes: Sequence[Change]) -> dict[str, Sequence[Change]]:
    """The changes of each entity, in the order of the batch (entities in the order each first appears): a batch
    of one entity, the usual one, as it is."""
    if not changes:
        return {}
    entity = changes[0].entity
    if [change.entity for change in changes].count(entity) == len(changes):
        return {entity: changes}
    groups: dict[str, list[Change]] = {}
    for change in changes:
        if (group := groups.get(change.entity)) is None:
            group = groups[change.entity] = []
        group.append(change)
    return groups


def _send_full(
    store: Store, flow_name: str, connector: Connector, entities: list[str], batch_size: int,
    retry: RetryPolicy, result: FlowResult, progress: Progress | None,
) -> None:
    head = store.head()
    for entity in entities:
        batch: list[Pending] = []
        rows = store.current(entity)
        for row in rows:
            batch.append(Pending.of_state(row))
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


def _saved(store: Store, flow_name: str) -> tuple[int, PlanCut | None]:
    """The flow's checkpoint: the change-log sequence delivered through (for a plan-cut in progress, the one
    before the cut), and the cut in progress, if any."""
    saved = store.checkpoint(flow_name)
    if saved and saved.startswith("{"):
        cut = msgspec.json.decode(saved, type=PlanCut)
        return cut.since, cut
    return int(saved or 0), None


def _send_plan_cut(
    store: Store, flow_name: str, connector: Connector, entities: list[str], batch_size: int,
    retry: RetryPolicy, result: FlowResult, progress: Progress | None,
) -> None:
    """Send the state of every entity as of one change-log sequence, taken when the cut starts (or resumed from the
    checkpoint of a cut a crash interrupted), in dependency order. Keys deleted since the target's previous
    checkpoint are sent as deletions, so the target ends up holding exactly the cut. The checkpoint moves after
    each batch the target confirmed."""
    previous, resumed = _saved(store, flow_name)
    cut = resumed.cut if resumed else store.head()
    start = entities.index(resumed.entity) if resumed and resumed.entity in entities else 0
    for entity in entities[start:]:
        after = resumed.after if resumed and entity == resumed.entity else None
        batch: list[Pending] = []

        def send(batch: list[Pending], entity: str = entity) -> None:
            links: list[Link] = []
            confirmed: list[tuple[str, Pending]] = []
            letters = _deliver(connector, flow_name, {entity: batch}, retry, result, links=links, confirmed=confirmed,
                               store=store)
            mark = PlanCut(cut=cut, entity=entity, after=batch[-1].record.key, since=previous)
            _commit(store, flow_name, connector.system, letters, links, confirmed, result,
                    {flow_name: msgspec.json.encode(mark).decode()})
            if progress is not None:
                progress(len(batch))

        for row in _rows_after(store, entity, cut, after):
            if row.deleted and row.last_seq <= previous:
                continue  # deleted before the target's last checkpoint: it never held it since
            batch.append(Pending.of_state(row))
            if len(batch) >= batch_size:
                send(batch)
                batch = []
        if batch:
            send(batch)
    with store.transaction() as tx:
        tx.set_checkpoint(flow_name, str(cut))
    result.checkpoint = str(cut)


def _rows_after(store: Store, entity: str, cut: int, after: str | None) -> Iterator[StateRow]:
    """The entity's rows as of ``cut`` that follow key ``after`` in the store's key order (all of them when
    ``after`` is None): one walk, which starts after the keys the target already confirmed."""
    return store.current_as_of(entity, cut, include_deleted=True, after_key=after)


def _deliver_and_record(
    store: Store, connector: Connector, flow_name: str, by_entity: dict[str, list[Pending]],
    retry: RetryPolicy, result: FlowResult, progress: Progress | None,
) -> None:
    links: list[Link] = []
    confirmed: list[tuple[str, Pending]] = []
    letters = _deliver(connector, flow_name, by_entity, retry, result, links=links, confirmed=confirmed, store=store)
    if letters or links or confirmed:
        _commit(store, flow_name, connector.system, letters, links, confirmed, result)
    if progress is not None:
        progress(sum(len(records) for records in by_entity.values()))


def _deliver(
    connector: Connector, flow_name: str, by_entity: dict[str, list[Pending]], retry: RetryPolicy,
    result: FlowResult, on_retry: OnRetry | None = None, probe: Probe | None = None, links: list[Link] | None = None,
    confirmed: list[tuple[str, Pending]] | None = None,
    store: Store | None = None, stop: threading.Event | None = None,
) -> list[NewDeadLetter]:
    """Write each entity's records; the dead letters of the records the target rejected (or, with ``probe``,
    could not take alone). ``links`` collects the ids the target gave the records (``WriteOutcome.links``),
    ``confirmed`` the records it accepted (for the delivery log); a connector that ``links_external_ids`` gets
    the id each record is already linked to, from ``store``."""
    letters: list[NewDeadLetter] = []
    for entity in dependency_order(by_entity):
        pending = by_entity[entity]
        if store is not None and connector.links_external_ids:
            linked = store.xref_externals(connector.system, entity, [item.record.key for item in pending])
            pending = [msgspec.structs.replace(item, record=msgspec.structs.replace(
                item.record, external_id=linked.get(item.record.key))) for item in pending]
        history: list[Attempt] = []
        try:
            outcome = _write(connector, entity, pending, retry, history, on_retry, stop)
        except ConnectorError as exc:
            if probe is None or not isinstance(exc, TransientError | PermanentError):
                raise
            outcome = _write_one_by_one(connector, flow_name, entity, pending, retry, history, on_retry, probe,
                                        letters, stop)
        accepted = outcome.accepted
        result.records_out += len(accepted)
        result.per_entity[entity] = result.per_entity.get(entity, 0) + len(accepted)
        if links is not None:
            links.extend((entity, external, key) for key, external in outcome.links.items())
        if not outcome.rejected and confirmed is not None and len(accepted) == len(pending) \
                and accepted == [item.record.key for item in pending]:  # taken as sent, the usual answer
            confirmed.extend([(entity, item) for item in pending])
            continue
        by_key = {item.record.key: item for item in pending}
        for key, reason in outcome.rejected.items():
            letters.append(_dead_letter(flow_name, connector.system, by_key[key], reason,
                                        [*history, Attempt(_now(), "rejected", reason)]))
        if confirmed is not None:
            confirmed.extend((entity, by_key[key]) for key in accepted if key in by_key)
    return letters


def write_pending(
    connector: Connector, flow_name: str, by_entity: dict[str, list[Pending]], retry: RetryPolicy,
    result: FlowResult, *, store: Store | None = None, links: list[Link] | None = None,
) -> list[NewDeadLetter]:
    """Write records outside the change-log walk (a replay): entities in dependency order, with retries; returns
    the dead letters of the records the target rejected, without storing them. As in delivery, with ``store`` a
    connector that ``links_external_ids`` gets the id each record is already linked to, and ``links`` collects
    the ids the target gave, for the caller to keep with :func:`keep_delivery`."""
    return _deliver(connector, flow_name, by_entity, retry, result, links=links, store=store)


def _write(
    connector: Connector, entity: str, pending: Sequence[Pending], retry: RetryPolicy, history: list[Attempt],
    on_retry: OnRetry | None, stop: threading.Event | None = None,
) -> WriteOutcome:
    def note(attempt: int, exc: TransientError, wait: float) -> None:
        history.append(Attempt(_now(), "failed", f"attempt {attempt}: {exc}"))
        if on_retry is not None:
            on_retry(attempt, exc, wait)

    records = [item.record for item in pending]
    return call_with_retry(lambda: connector.write(entity, records), retry, on_retry=note, stop=stop)


def _write_one_by_one(
    connector: Connector, flow_name: str, entity: str, pending: Sequence[Pending], retry: RetryPolicy,
    history: list[Attempt], on_retry: OnRetry | None, probe: Probe, letters: list[NewDeadLetter],
    stop: threading.Event | None = None,
) -> WriteOutcome:
    """The batch failed as a whole: find the records that make it fail by writing each alone."""
    combined = WriteOutcome()
    for item in pending:
        if stop is not None and stop.is_set():
            raise Stopped("stopped while writing a failed batch record by record")
        own = list(history)
        try:
            outcome = _write(connector, entity, [item], retry, own, on_retry, stop)
        except PermanentError as exc:
            if not probe():
                raise  # the target refuses everything now (credentials, configuration): not this record's fault
            letters.append(_dead_letter(flow_name, connector.system, item, str(exc),
                                        [*own, Attempt(_now(), "rejected", str(exc))]))
            continue
        except TransientError as exc:
            if not probe():
                raise  # the target itself is down: not this record's fault
            reason = f"retries exhausted while the target took other writes: {exc}"
            letters.append(_dead_letter(flow_name, connector.system, item, reason,
                                        [*own, Attempt(_now(), "exhausted", str(exc))]))
            continue
        combined.accepted += outcome.accepted
        combined.rejected.update(outcome.rejected)
    return combined


def _dead_letter(flow_name: str, system: str, item: Pending, reason: str, attempts: Sequence[Attempt],
                 held_by: int | None = None) -> NewDeadLetter:
    payload = None if item.record.payload is None else msgspec.json.encode(item.record.payload).decode()
    return NewDeadLetter(flow=flow_name, system=system, entity=item.entity, record_key=item.record.key,
                         seq=item.seq, version=item.record.version, payload=payload, reason=reason,
                         attempts=list(attempts), held_by=held_by)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


Link = tuple[str, str, str]
"""(entity, the target's id, canonical key)."""


def _commit(
    store: Store, flow_name: str, system: str, letters: Sequence[NewDeadLetter], links: Sequence[Link],
    confirmed: Sequence[tuple[str, Pending]], result: FlowResult, checkpoints: Mapping[str, str] | None = None,
    *, durable: bool = True,
) -> None:
    """Store what a delivery left, in one transaction: the dead letters of the records the target rejected, the
    ids it gave records (the xref), the delivery log of those it confirmed, and the checkpoints it covers
    (``durable``: see :meth:`~syncfabric.store.Store.transaction`)."""
    with store.transaction(durable=durable) as tx:
        keep_delivery(tx, flow_name, system, letters, links, confirmed)
        for name, value in (checkpoints or {}).items():
            tx.set_checkpoint(name, value)
    result.dead_lettered += len(letters)


def keep_delivery(
    tx: Transaction, flow_name: str, system: str, letters: Sequence[NewDeadLetter] = (), links: Sequence[Link] = (),
    confirmed: Sequence[tuple[str, Pending]] = (),
) -> None:
    """Keep what a write to a target left, in the caller's transaction: the dead letters of the records it
    rejected, the ids it gave records (the xref: the next write of the key updates what it made), and the
    delivery log of the records it confirmed. Delivery and replays both keep their writes through this."""
    if letters:
        tx.add_dead_letters(letters)
    _keep_links(tx, system, links)
    tx.add_deliveries(delivery_log.deliveries(flow_name, system, confirmed))


def _keep_links(tx: Transaction, system: str, links: Sequence[Link]) -> None:
    for entity, external, key in links:
        tx.put_xref(system, entity, external, key)


_decode = msgspec.json.Decoder(dict[str, Any]).decode
_DELETE = Op.DELETE


def _from_state(row: StateRow) -> OutboundRecord:
    payload = None if row.deleted or row.payload is None else msgspec.json.decode(row.payload)
    return OutboundRecord(key=row.key, version=row.version, payload=payload)
