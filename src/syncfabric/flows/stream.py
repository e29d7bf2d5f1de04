"""Continuous outbound delivery: consume the flow's changes through the bus and deliver each to its target.

A :class:`StreamConsumer` is one worker of the bus consumer named after its flow (:func:`syncfabric.bus.open_bus`
with the estate's ``bus``: the store's change log itself by default, NATS JetStream with ``nats://``). It fetches a
batch of one partition, delivers it with :func:`~syncfabric.flows.outbound.deliver_changes`, the step a batch run
takes (the newest change of a key in a batch supersedes older ones, keys held by a dead letter are parked behind it,
entities go in dependency order), and acknowledges it once the target confirmed. Several workers (processes) of one
flow share its partitions through leases in the store, each key's changes staying in one partition: per-key order
holds however many run. A crash re-sends at most one batch, which an idempotent target (keyed by canonical key and
version) absorbs: at-least-once delivery, exactly-once effect.

The flow checkpoint and the bus. The flow checkpoint (``store.checkpoint(flow)``) stays the flow's one
"delivered through" mark: every change of the flow at or below it has been delivered. A batch run (``sync``) moves it
after each batch it delivered. A worker keeps one mark per partition (``stream:<flow>:<partition>``, moved in the
transaction that records the batch's dead letters) and moves the flow checkpoint up to the lowest of them; it skips
(acknowledges without sending) changes at or below the flow checkpoint or its partition's mark, so a change a batch
run delivered is not sent again, and a batch redelivered after a crash past its commit is not either. The bus
consumer is created at the flow checkpoint. ``sync`` refuses a flow while workers deliver it, so only one of the two
moves a flow at a time.

When a batch fails after its retries, the worker keeps the batch (the partition delivers nothing newer meanwhile),
waits (capped exponential backoff, per the flow's retry policy) and tries it again while it still holds the
partition. With a fallback policy (:mod:`.fallback`), a target that stays unhealthy past a threshold makes the flow
switch by itself to batch catch-up on an interval, and back to streaming once a catch-up went through; each switch
is a run in the run history and an alert.

When idle the consumer waits with :meth:`~syncfabric.store.Store.wait_for_changes`: on PostgreSQL a commit to
the change log wakes it at once (LISTEN/NOTIFY); on SQLite a commit of the same process wakes it at once and
another process's within a millisecond (see :mod:`syncfabric.store.sqlite`). Polling a change log indexed by
sequence costs one indexed query per interval; the store's commit order is its sequence order (see
:mod:`syncfabric.store.sql`), so a poll never misses a change committed behind one it saw.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from syncfabric.bus import Batch, Bus, Subscription, open_bus
from syncfabric.connectors.base import Connector
from syncfabric.errors import ConnectorError, SyncfabricError, TransientError
from syncfabric.flows.fallback import FallbackPolicy, Health
from syncfabric.flows.heap import settle_after_start_up
from syncfabric.flows.outbound import deliver_changes
from syncfabric.flows.result import FlowResult
from syncfabric.flows.retry import RetryPolicy, Stopped
from syncfabric.store import RunStatus, Store

if TYPE_CHECKING:
    from syncfabric.flows.runtime import Runtime

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 0.2
OBSERVE_INTERVAL = 0.25
"""While changes keep coming, the lag figures (two reads of the store) are refreshed at most this often, not at
every wake-up; ``until_idle`` and a failed batch refresh them every time."""
STREAMING = "streaming"
FALLBACK = "fallback"
NO_FALLBACK = FallbackPolicy(lag_seconds=None, error_rate=None, outage_seconds=None, reconcile=False)
"""A flow without a fallback policy streams whatever happens, backing off between failed batches."""


@dataclass
class StreamStats:
    """Live counts of one consumer, as ``syncfabric deliver`` shows them."""

    flow: str
    mode: str = "streaming"
    """``streaming`` (following the change log) or ``fallback`` (batch catch-up on an interval)."""
    changes: int = 0
    """Change-log entries covered (delivered, superseded within a batch, or dead-lettered)."""
    delivered: int = 0
    """Records the target accepted."""
    batches: int = 0
    retries: int = 0
    failures: int = 0
    """Batches that failed after all their retries (the consumer tries them again later)."""
    dead_lettered: int = 0
    checkpoint: int = 0
    pending: int = 0
    """Change-log entries of the flow's entities after its checkpoint, at the last look (at most one batch)."""
    lag_seconds: float = 0.0
    """Age of the oldest change not yet delivered; 0 when caught up."""
    last_error: str = ""
    switches: list[str] = field(default_factory=list)


class StreamConsumer:
    """Delivers one outbound flow's changes continuously. :meth:`run` until ``stop`` is set (or caught up)."""

    def __init__(
        self,
        store: Store,
        flow: str,
        connector: Connector,
        *,
        entities: Sequence[str],
        batch_size: int = 1000,
        retry: RetryPolicy | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        fallback: FallbackPolicy | None = None,
        on_update: Callable[[StreamStats], None] | None = None,
        bus: str | Bus | None = None,
        worker: str | None = None,
    ) -> None:
        self.store = store
        self.flow = flow
        self.connector = connector
        self.entities = list(entities)
        self.batch_size = batch_size
        self.retry = retry or RetryPolicy()
        self.poll_interval = poll_interval
        self.on_update = on_update
        self.stats = StreamStats(flow=flow)
        self._result = FlowResult(flow=flow, direction="outbound")
        self._consecutive_failures = 0
        self.fallback = fallback
        self.policy = fallback or NO_FALLBACK
        self.health = Health(self.policy)
        self._next_catch_up = 0.0
        self._run_id = 0
        self._at_start: tuple[int, ...] = ()
        self._bus_spec = bus
        self.bus: Bus | None = None
        self.sub: Subscription | None = None
        self.worker = worker
        self._held: Batch | None = None
        """A batch fetched and not yet delivered (its delivery failed): tried again before anything else."""
        self._marks: dict[int, int] = {}
        """The partition marks as this worker last wrote or read them."""
        self._next_observe = 0.0
        self._stop = threading.Event()
        """Set to end :meth:`run`: every wait of the consumer (for changes, a backoff, a retry) ends when it is."""

    # -- one step ---------------------------------------------------------------------------------------------------

    def step(self, *, isolate: bool = False) -> int:
        """Deliver the next batch of one of this worker's partitions and acknowledge it; returns the change-log
        entries it covered (0 when none is waiting). Raises the connector's error when the batch failed after its
        retries; the batch is kept and tried first by the next step. With ``isolate``, a batch that fails as a whole
        is tried one record at a time, and the records that fail alone while the target answers are dead-lettered
        (see :func:`~syncfabric.flows.outbound.deliver_changes`)."""
        sub = self._subscription()
        batch = self._held
        if batch is not None and batch.partition not in sub.rebalance():
            self._held = batch = None  # the partition went to another worker, which delivers the batch again
        if batch is None:
            batch = sub.fetch(self.batch_size, timeout=0)
            if batch is None:
                self._advance()
                return 0
            self._held = batch
        partition, last = batch.partition, batch.messages[-1].seq
        flow_mark = int(self.store.checkpoint(self.flow) or 0)
        mark = max(flow_mark, self._mark(partition, flow_mark))
        todo = [change for m in batch.messages if (change := m.change).seq > mark]
        upto = max(last, mark)
        # One commit per batch: the partition mark, the bus's own cursor and, when this moves the lowest mark, the
        # flow checkpoint go into the transaction that records the batch's outcome (marks not read yet count as
        # lower, so the flow checkpoint never moves past an undelivered change).
        done = {mark_name(self.flow, partition): str(upto), **batch.store_checkpoints}
        assert self.bus is not None
        low = min(upto if p == partition else self._marks.get(p, 0) for p in range(self.bus.partitions))
        if low > flow_mark:
            done[self.flow] = str(low)
        before, lettered = self._result.records_out, self._result.dead_lettered
        if todo:
            deliver_changes(self.store, self.flow, self.connector, todo, retry=self.retry, result=self._result,
                            checkpoints=done, on_retry=self._count_retry, probe=self.healthy if isolate else None,
                            stop=self._stop)
        else:  # like a delivered batch's commit, without waiting for the disk (lost, it is done again)
            with self.store.transaction(durable=False) as tx:
                for name, value in done.items():
                    tx.set_checkpoint(name, value)
        self._marks[partition] = upto
        batch.ack(recorded=True)
        self._held = None
        # the flow checkpoint as this batch's commit left it, and the partition's mark as it wrote it (this worker
        # holds the partition: nobody else moved it since)
        self._advance(int(done.get(self.flow, flow_mark)), written={partition: upto})
        self.stats.batches += 1
        self.stats.changes += len(batch)
        self.stats.delivered += self._result.records_out - before
        self.stats.dead_lettered += self._result.dead_lettered - lettered
        return len(batch)

    def _subscription(self) -> Subscription:
        if self.sub is None:
            if self.bus is None:
                self.bus = self._bus_spec if isinstance(self._bus_spec, Bus) else open_bus(self._bus_spec, self.store)
            self.sub = self.bus.subscribe(self.flow, entities=self.entities, worker=self.worker,
                                          start=self._start())
        return self.sub

    def _start(self) -> dt.datetime | None:
        """Where the bus consumer starts when it is new: at the flow checkpoint (changes recorded at the same
        time as the one at the checkpoint come too, and are skipped as delivered)."""
        at = int(self.store.checkpoint(self.flow) or 0)
        found = self.store.changes(at - 1, limit=1) if at else []
        return found[0].recorded_at if found else None

    def _mark(self, partition: int, flow_mark: int) -> int:
        """A partition's mark, from the store (another worker may have moved it while it held the partition)."""
        stored = self.store.checkpoint(mark_name(self.flow, partition))
        if stored is None:  # a partition never delivered: everything up to the flow checkpoint is
            stored = str(flow_mark)
        self._marks[partition] = max(int(stored or 0), self._marks.get(partition, 0))
        return self._marks[partition]

    def _advance(self, flow_mark: int | None = None, written: dict[int, int] | None = None) -> None:
        """Move the marks of partitions the bus reports acknowledged further (an idle partition's included), then
        the flow checkpoint up to the lowest mark of all partitions. Writes only what moved. ``flow_mark`` is the
        flow checkpoint as the step read it: while workers run, only this method moves it, to the lowest mark, so
        a value read earlier can only be behind, and writing the lowest mark over it is still right. ``written``:
        marks the caller just committed itself, not read again."""
        assert self.sub is not None and self.bus is not None
        if flow_mark is None:
            flow_mark = int(self.store.checkpoint(self.flow) or 0)
        written = written or {}
        marks = {p: written[p] if p in written else self._mark(p, flow_mark) for p in range(self.bus.partitions)}
        moved = {p: upto for p, upto in self.sub.acknowledged_through().items() if upto > marks[p]}
        marks.update(moved)
        low = min(marks.values())
        if not moved and low <= flow_mark:
            self.stats.checkpoint = flow_mark
            return
        with self.store.transaction(durable=False) as tx:
            for p, upto in moved.items():
                tx.set_checkpoint(mark_name(self.flow, p), str(upto))
            if low > flow_mark:
                tx.set_checkpoint(self.flow, str(low))
        self._marks.update(moved)
        self.stats.checkpoint = max(low, flow_mark)

    def close(self) -> None:
        """Leave the flow's bus consumer (a batch not delivered goes to the next holder of its partition)."""
        if self.sub is not None:
            self.sub.close()
            self.sub = None
        if self.bus is not None and not isinstance(self._bus_spec, Bus):
            self.bus.close()
        self.bus = None
        self._held = None

    def healthy(self) -> bool:
        """Whether the target answers a cheap request now (its connector's connection test)."""
        try:
            self.connector.test_connection()
        except ConnectorError:
            return False
        return True

    def _step_or_isolate(self) -> int:
        """One batch; when it fails as a whole while the target answers its connection test, find the poison
        records one by one, so that they alone wait and every other key goes on. A target that does not answer
        (down, or refusing our credentials) is not the records' fault: the error is raised and nothing is
        dead-lettered."""
        try:
            return self.step()
        except ConnectorError as exc:
            if self._stop.is_set() or not self.healthy():
                raise
            log.warning("%s: batch failed while the target answers; delivering it record by record: %s",
                        self.flow, exc)
            return self.step(isolate=True)

    def _count_retry(self, attempt: int, exc: TransientError, wait: float) -> None:
        self.stats.retries += 1
        self.stats.last_error = str(exc)
        log.info("%s: attempt %d failed, retrying in %.2f s: %s", self.flow, attempt, wait, exc)

    def observe(self) -> None:
        """Refresh the lag figures from the store."""
        self._next_observe = time.monotonic() + OBSERVE_INTERVAL
        after = int(self.store.checkpoint(self.flow) or 0)
        ahead = self.store.changes(after, entities=self.entities, limit=self.batch_size)
        self.stats.checkpoint = after
        self.stats.pending = len(ahead)
        if ahead:
            self.stats.lag_seconds = max(0.0, (dt.datetime.now(dt.UTC) - ahead[0].recorded_at).total_seconds())
        else:
            self.stats.lag_seconds = 0.0

    # -- the loop ---------------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, *, until_idle: bool = False) -> StreamStats:
        """Deliver until ``stop`` is set, or, with ``until_idle``, until the flow is caught up and streaming.

        Each stretch in one mode is one run in the run history (``detail.mode``: ``stream`` or ``catch-up``,
        ``detail.ended_by``: what ended it); each switch is also an alert. A flow that was left in fallback resumes
        in fallback. Told to stop while it waits to retry a batch, it ends at once and the batch, unacknowledged,
        is delivered again by the next holder of its partition."""
        stop = self._stop = stop or threading.Event()
        if self.fallback is not None and self._left_in_fallback():
            self.stats.mode = FALLBACK
        self._begin_segment()
        settle_after_start_up()
        status, ended_by = RunStatus.FAILED, "error"
        try:
            while not stop.is_set():
                done = self._stream_once(stop, until_idle) if self.stats.mode == STREAMING \
                    else self._catch_up_once(stop)
                if done:
                    break
            status, ended_by = RunStatus.SUCCEEDED, "stopped"
        except Stopped:
            status, ended_by = RunStatus.SUCCEEDED, "stopped"
        finally:
            self._end_segment(status, ended_by)
            self.close()
        return self.stats

    # -- streaming ----------------------------------------------------------------------------------------------------

    def _stream_once(self, stop: threading.Event, until_idle: bool) -> bool:
        """One batch, or one look at an idle log; True when the loop should end."""
        try:
            covered = self._step_or_isolate()
        except ConnectorError as exc:
            self._failed(exc)
            reason = self.health.verdict(self.stats.lag_seconds, time.monotonic())
            if reason is not None:
                self._switch(FALLBACK, reason)
            else:
                stop.wait(self._backoff())
            return False
        self._succeeded()
        if covered and self.policy.lag_seconds is None:
            self._update()
            return False
        if until_idle or time.monotonic() >= self._next_observe:
            self.observe()
        self._update()
        reason = self.health.verdict(self.stats.lag_seconds, time.monotonic())
        if reason is not None and self.fallback is not None:
            self._switch(FALLBACK, reason)
            return False
        if covered:
            return False
        if until_idle and self.stats.pending == 0:  # nothing of the flow undelivered, by any worker
            return True
        self.store.wait_for_changes(self.poll_interval, stop)
        return False

    # -- fallback: batch catch-up on an interval ------------------------------------------------------------------

    def _catch_up_once(self, stop: threading.Event) -> bool:
        """Wait for the next catch-up, then send every net change since the checkpoint if the target answers;
        stream again once it went through."""
        remaining = self._next_catch_up - time.monotonic()
        if remaining > 0 and stop.wait(remaining):
            return True
        self._next_catch_up = time.monotonic() + self.policy.catch_up_interval
        if not self.healthy():
            self._failed(TransientError("target does not answer its connection test", system=self.connector.system))
            return False
        before = self.stats.changes
        try:
            while self._step_or_isolate():
                self._update()
                if stop.is_set():
                    return True
        except ConnectorError as exc:
            self._failed(exc)
            return False
        self._succeeded()
        self.observe()
        detail: dict[str, object] = {"caught_up": self.stats.changes - before, "checkpoint": self.stats.checkpoint}
        if self.policy.reconcile:
            detail["reconciliation"] = self._reconcile()
        self._switch(STREAMING, f"catch-up delivered {self.stats.changes - before} changes and the target answers",
                     detail)
        return False

    def _reconcile(self) -> object:
        """Compare the target with the store; resend the current state of keys it lacks or holds behind."""
        from syncfabric.flows.reconcile import check_target, repair

        try:
            checks = check_target(self.store, self.connector, self.entities, upto=self.stats.checkpoint)
            if checks is None:
                return "not supported by the target"
            mismatched = [c for c in checks if not c.ok]
            repaired, letters = (repair(self.store, self.flow, self.connector, mismatched, retry=self.retry,
                                        batch_size=self.batch_size) if mismatched else (0, []))
        except ConnectorError as exc:
            return {"error": str(exc)}
        if letters:
            with self.store.transaction() as tx:
                tx.add_dead_letters(letters)
            self.stats.dead_lettered += len(letters)
        if mismatched:
            message = (f"{self.flow}: the target differed from the store after catch-up ("
                       + "; ".join(f"{c.entity}: {c.missing} missing, {c.extra} extra, {c.behind} behind"
                                   for c in mismatched) + f"); resent {repaired} records")
            log.warning(message)
            self.store.raise_alert(self.flow, "reconciliation", message, {
                "checks": [c.as_dict() for c in checks], "resent": repaired, "dead_lettered": len(letters)})
        return [{**c.as_dict(), "resent": len(c.to_resend)} if not c.ok else c.as_dict() for c in checks]

    # -- bookkeeping --------------------------------------------------------------------------------------------------

    def _succeeded(self) -> None:
        self._consecutive_failures = 0
        self.health.record(True, time.monotonic())

    def _switch(self, mode: str, reason: str, detail: dict[str, object] | None = None) -> None:
        kind = "fallback" if mode == FALLBACK else "recovered"
        message = (f"{self.flow} falls back to batch catch-up: {reason}" if mode == FALLBACK
                   else f"{self.flow} streams again: {reason}")
        self._end_segment(RunStatus.SUCCEEDED, f"{kind}: {reason}")
        log.warning(message)
        self.store.raise_alert(self.flow, kind, message, {
            "reason": reason, "lag_seconds": round(self.stats.lag_seconds, 3), "pending": self.stats.pending,
            "error_rate": round(self.health.error_rate, 3), "last_error": self.stats.last_error, **(detail or {}),
        })
        self.stats.mode = mode
        self.stats.switches.append(f"{dt.datetime.now(dt.UTC):%H:%M:%S} {kind}: {reason}")
        self.health.reset()
        self._consecutive_failures = 0
        self._next_catch_up = time.monotonic() + self.policy.catch_up_interval
        self._begin_segment()

    def _left_in_fallback(self) -> bool:
        for alert in self.store.alerts(self.flow, limit=50):
            if alert.kind in ("fallback", "recovered"):
                return alert.kind == "fallback"
        return False

    def _begin_segment(self) -> None:
        self._run_id = self.store.start_run(self.flow)
        self._at_start = (self.stats.changes, self.stats.delivered, self.stats.batches, self.stats.retries,
                          self.stats.failures, self.stats.dead_lettered)

    def _end_segment(self, status: RunStatus, ended_by: str) -> None:
        changes, delivered, batches, retries, failures, lettered = (
            now - then for now, then in zip(
                (self.stats.changes, self.stats.delivered, self.stats.batches, self.stats.retries,
                 self.stats.failures, self.stats.dead_lettered), self._at_start, strict=True))
        self.store.finish_run(
            self._run_id, status, records_out=delivered,
            detail={"mode": "stream" if self.stats.mode == STREAMING else "catch-up", "ended_by": ended_by,
                    "changes": changes, "batches": batches, "retries": retries, "failures": failures,
                    "dead_lettered": lettered, "checkpoint": str(self.stats.checkpoint)},
        )

    def _failed(self, exc: ConnectorError) -> None:
        self._consecutive_failures += 1
        self.health.record(False, time.monotonic())
        self.stats.failures += 1
        self.stats.last_error = str(exc)
        log.warning("%s: batch failed after retries (%d in a row): %s", self.flow, self._consecutive_failures, exc)
        self.observe()
        self._update()

    def _backoff(self) -> float:
        return self.retry.delay(self._consecutive_failures)

    def _update(self) -> None:
        if self.on_update is not None:
            self.on_update(self.stats)


def consumer_for(runtime: Runtime, flow_name: str, connector: Connector, **options: Any) -> StreamConsumer:
    """The consumer of an estate's outbound flow, with the flow's batch size, retry, polling and fallback policy."""
    from syncfabric.errors import ConfigError

    flow = runtime.estate.flows.get(flow_name)
    if flow is None:
        raise ConfigError([f"unknown flow {flow_name!r}; flows: {', '.join(runtime.estate.flows) or 'none'}"])
    if flow.direction != "outbound" or flow.mode != "changes":
        raise ConfigError([f"flow {flow_name!r} is not an outbound flow in mode changes: only those stream"])
    options.setdefault("retry", RetryPolicy.from_spec(flow.delivery.retry))
    options.setdefault("poll_interval", flow.delivery.poll_interval_seconds)
    if flow.delivery.fallback is not None:
        options.setdefault("fallback", FallbackPolicy.from_spec(flow.delivery.fallback))
    options.setdefault("bus", runtime.estate.bus)
    return StreamConsumer(runtime.store, flow_name, connector, entities=flow.entities, batch_size=flow.batch_size,
                          **options)


def mark_name(flow: str, partition: int) -> str:
    """The checkpoint of a streaming flow's partition mark: every change of the partition at or below it is
    delivered."""
    return f"stream:{flow}:{partition}"


def refuse_while_streaming(store: Store, flow: str) -> None:
    """A batch run of a flow in mode changes must not race its streaming workers: refuse while any holds it."""
    workers = sorted(set(store.leases(f"bus:{flow}:worker:").values()))
    if workers:
        raise SyncfabricError(f"flow {flow!r} is being delivered continuously by {', '.join(workers)}: a batch run "
                              "would race it; stop 'syncfabric deliver' first (it delivers the same changes)")
