"""The dead-letter workflow: resend what an outbound flow could not deliver, after a fix, or discard it.

A dead letter holds its key for its flow: later changes of the key are parked behind it (as dead letters too), so
that the target never receives them out of order, while every other key flows on. Replay therefore works per key:
naming any open dead letter of a key replays the key, sending its newest parked change (which supersedes the older
ones, as within a batch) and closing all of them once the target accepted it. If the target rejects it again, they
all stay open with the new reason and the key stays held.

Replays go through the same write as delivery (entities in dependency order, the flow's retry policy) and are
idempotent at the target, which applies a key's version once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from syncfabric.connectors.base import Connector, OutboundRecord
from syncfabric.errors import ConnectorError
from syncfabric.flows.outbound import Link, Pending, keep_delivery, write_pending
from syncfabric.flows.result import FlowResult
from syncfabric.flows.retry import RetryPolicy
from syncfabric.store import Attempt, DeadLetter, DeadLetterStatus, Store

Key = tuple[str, str, str]
"""(flow, entity, record key)"""


@dataclass
class DeadLetterReplay:
    """What a replay did, per key: the dead letters it closed, and those that failed again with why."""

    delivered: list[Key] = field(default_factory=list)
    replayed: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class KeyReplay:
    """One key to replay: the newest open dead letter (what is sent) and every open one it closes."""

    newest: DeadLetter
    entries: tuple[DeadLetter, ...]

    @property
    def key(self) -> Key:
        return (self.newest.flow, self.newest.entity, self.newest.record_key)


def plan(store: Store, selected: Sequence[DeadLetter]) -> list[KeyReplay]:
    """The keys of the selected open dead letters, each with all of its open dead letters, oldest key first."""
    keys = dict.fromkeys((e.flow, e.entity, e.record_key) for e in selected if e.status is DeadLetterStatus.OPEN)
    plans: list[KeyReplay] = []
    for flow, entity, key in keys:
        entries = store.dead_letters(flow=flow, entity=entity, key=key)
        if entries:
            plans.append(KeyReplay(max(entries, key=lambda e: e.seq), tuple(entries)))
    return plans


ROUNDS = 3
"""Replays of a key in one call: a consumer running meanwhile may park a newer change behind a dead letter the
replay just closed; the next round sends it too."""


def replay_keys(
    store: Store, connector: Connector, plans: Sequence[KeyReplay], *, retry: RetryPolicy | None = None,
    actor: str = "",
) -> DeadLetterReplay:
    """Send each key's newest dead-lettered change to the target (all plans of one flow, whose target
    ``connector`` writes to), then close or annotate its dead letters in one transaction; again for keys that a
    running consumer parked a newer change of meanwhile."""
    outcome = DeadLetterReplay()
    for _ in range(ROUNDS):
        done = _replay_round(store, connector, plans, retry, actor)
        outcome.delivered += [key for key in done.delivered if key not in outcome.delivered]
        outcome.replayed += done.replayed
        outcome.failed.update(done.failed)
        delivered = set(done.delivered)
        plans = [p for p in plan(store, [e for p in plans if p.key in delivered for e in p.entries])]
        if not plans:
            break
    return outcome


def _replay_round(
    store: Store, connector: Connector, plans: Sequence[KeyReplay], retry: RetryPolicy | None, actor: str,
) -> DeadLetterReplay:
    outcome = DeadLetterReplay()
    if not plans:
        return outcome
    flows = {p.newest.flow for p in plans}
    if len(flows) != 1:
        raise ValueError(f"replay_keys takes the keys of one flow, got {sorted(flows)}")
    by_entity: dict[str, list[Pending]] = {}
    for p in plans:
        record = OutboundRecord(p.newest.record_key, p.newest.version,
                                None if p.newest.payload is None else msgspec.json.decode(p.newest.payload))
        by_entity.setdefault(p.newest.entity, []).append(Pending(p.newest.entity, record, p.newest.seq))
    result = FlowResult(flow=next(iter(flows)), direction="outbound")
    links: list[Link] = []
    try:
        rejected = {(letter.entity, letter.record_key): letter.reason
                    for letter in write_pending(connector, result.flow, by_entity, retry or RetryPolicy(), result,
                                                store=store, links=links)}
    except ConnectorError as exc:
        rejected = {(p.newest.entity, p.newest.record_key): f"replay failed: {exc}" for p in plans}
    now = dt.datetime.now(dt.UTC)
    with store.transaction() as tx:
        keep_delivery(tx, result.flow, connector.system, links=links)
        for p in plans:
            ids = [e.id for e in p.entries]
            reason = rejected.get((p.newest.entity, p.newest.record_key))
            if reason is None:
                detail = f"delivered v{p.newest.version} (change {p.newest.seq}, dead letter #{p.newest.id})"
                tx.update_dead_letters(ids, Attempt(now, "replayed", _by(detail, actor)),
                                       status=DeadLetterStatus.REPLAYED)
                outcome.delivered.append(p.key)
                outcome.replayed += ids
            else:
                attempt = Attempt(now, "replay_failed", _by(reason, actor))
                tx.update_dead_letters([i for i in ids if i != p.newest.id], attempt)
                tx.update_dead_letters([p.newest.id], attempt, reason=reason)
                outcome.failed.update(dict.fromkeys(ids, reason))
    return outcome


def discard(store: Store, entries: Sequence[DeadLetter], *, note: str = "", actor: str = "") -> list[int]:
    """Close open dead letters without delivering them; returns the ids discarded. A key stays held while it has
    other open dead letters."""
    ids = [e.id for e in entries if e.status is DeadLetterStatus.OPEN]
    if ids:
        with store.transaction() as tx:
            tx.update_dead_letters(ids, Attempt(dt.datetime.now(dt.UTC), "discarded", _by(note, actor)),
                                   status=DeadLetterStatus.DISCARDED)
    return ids


def _by(text: str, actor: str) -> str:
    return f"{text} (by {actor})" if actor else text
