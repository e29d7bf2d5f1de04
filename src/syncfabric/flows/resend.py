"""Replay of the change log to one outbound flow's target: resend what it already delivered, from a sequence, from a
time, for one key or one entity (a target that lost data, a target restored from a backup, a new target mirror).

A replay sends, per key, the newest matching change the flow has already covered (sequence up to its checkpoint);
changes after the checkpoint are the flow's own next work and are left to it. Keys the flow holds with an open dead
letter are skipped: they are resent with ``deadletter replay``, which keeps their order. Entities go out in
dependency order, then by sequence. The flow's checkpoint does not move. Targets apply a key's version once, so a
replay over records the target still has changes nothing there; a record the target rejects becomes a dead letter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from syncfabric.connectors.base import Connector
from syncfabric.errors import ConfigError
from syncfabric.flows.outbound import Link, Pending, dependency_order, keep_delivery, write_pending
from syncfabric.flows.result import FlowResult, Progress
from syncfabric.flows.retry import RetryPolicy
from syncfabric.store import Change, Store

SCAN_PAGE = 5000


@dataclass(frozen=True)
class Selection:
    """Which changes to resend. ``from_seq`` is inclusive; ``since`` is a UTC time, inclusive."""

    from_seq: int | None = None
    since: dt.datetime | None = None
    entity: str | None = None
    key: str | None = None

    def matches(self, change: Change) -> bool:
        return ((self.since is None or change.recorded_at >= self.since)
                and (self.entity is None or change.entity == self.entity)
                and (self.key is None or change.key == self.key))

    def describe(self) -> dict[str, object]:
        return {name: (value.isoformat() if isinstance(value, dt.datetime) else value)
                for name, value in vars(self).items() if value is not None}


@dataclass
class ResendPlan:
    flow: str
    checkpoint: int
    changes: list[Change] = field(default_factory=list)
    """What will be sent: the newest matching change per key, in sending order."""
    matched: int = 0
    """Matching change-log entries up to the checkpoint (several per key fold into one)."""
    pending: int = 0
    """Matching entries after the checkpoint: the flow delivers them itself."""
    held: list[Change] = field(default_factory=list)
    """Keys skipped because the flow holds them with an open dead letter."""


def plan_resend(store: Store, flow: str, entities: Sequence[str], selection: Selection) -> ResendPlan:
    """Walk the flow's part of the change log once and pick what a replay would send."""
    if selection.entity is not None and selection.entity not in entities:
        raise ConfigError([f"flow {flow!r} does not deliver entity {selection.entity!r}; it delivers "
                           f"{', '.join(entities)}"])
    checkpoint = int(store.checkpoint(flow) or 0)
    plan = ResendPlan(flow=flow, checkpoint=checkpoint)
    scope = [selection.entity] if selection.entity else list(entities)
    after = max((selection.from_seq or 1) - 1, 0)
    latest: dict[tuple[str, str], Change] = {}
    while page := store.changes(after, entities=scope, limit=SCAN_PAGE):
        for change in page:
            if not selection.matches(change):
                continue
            if change.seq > checkpoint:
                plan.pending += 1
                continue
            plan.matched += 1
            latest.pop((change.entity, change.key), None)
            latest[(change.entity, change.key)] = change
        after = page[-1].seq
    held = store.held_keys(flow)
    order = {entity: index for index, entity in enumerate(dependency_order(entity for entity, _ in latest))}
    for change in sorted(latest.values(), key=lambda c: (order[c.entity], c.seq)):
        (plan.held if (change.entity, change.key) in held else plan.changes).append(change)
    return plan


def resend(
    store: Store, connector: Connector, plan: ResendPlan, *, batch_size: int = 1000, retry: RetryPolicy | None = None,
    progress: Progress | None = None, selection: Selection | None = None,
) -> FlowResult:
    """Send a plan's changes to the flow's target in batches; rejections become dead letters. Recorded in the run
    history as a run of the flow with ``detail.replay``."""
    from syncfabric.store import RunStatus

    result = FlowResult(flow=plan.flow, direction="outbound")
    run_id = store.start_run(plan.flow)
    try:
        for start in range(0, len(plan.changes), batch_size):
            chunk = plan.changes[start:start + batch_size]
            by_entity: dict[str, list[Pending]] = {}
            for change in chunk:
                by_entity.setdefault(change.entity, []).append(Pending.of_change(change))
            links: list[Link] = []
            letters = write_pending(connector, plan.flow, by_entity, retry or RetryPolicy(), result, store=store,
                                    links=links)
            if letters or links:
                with store.transaction() as tx:
                    keep_delivery(tx, plan.flow, connector.system, letters, links)
                result.dead_lettered += len(letters)
            if progress is not None:
                progress(len(chunk))
    except BaseException as exc:
        store.finish_run(run_id, RunStatus.FAILED, records_out=result.records_out,
                         detail={"replay": (selection or Selection()).describe(), "error": str(exc)})
        raise
    detail = {**result.detail(), "replay": (selection or Selection()).describe(), "sent": len(plan.changes),
              "checkpoint": str(plan.checkpoint)}
    store.finish_run(run_id, RunStatus.SUCCEEDED, records_out=result.records_out, detail=detail)
    return result
