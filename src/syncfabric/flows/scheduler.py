"""Runs an estate's flows on their cron schedules, in the foreground, one run at a time per flow.

A flow's schedule is its own ``schedule``; an inbound flow without one follows the ``schedule`` of its entity's
domain. Cron expressions have 5 fields (minute hour day month weekday), or 6 with a sixth field for seconds.

- **No overlapping runs.** Before a run the scheduler takes the flow's lease in the store (``flow:<name>``, see
  :mod:`syncfabric.flows.lease`; every run of a flow holds it, ``syncfabric sync`` too); a second scheduler on the
  same store (another process, another machine on one PostgreSQL) finds the lease held and lets that fire go.
  The fire time a run was started for is recorded in the store (checkpoint ``schedule:<name>``) before the lease
  is released, so a fire is never run twice either. A process that dies leaves its lease to expire.
- **Missed runs.** Fire times that passed without a run (no scheduler was running, or a run overran into the next
  fire time) follow the flow's ``missed`` policy: ``skip`` waits for the next fire time, ``run_once`` runs once
  at once to catch up, however many were missed. A fire is missed when the scheduler gets to it more than
  ``grace`` late.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from croniter import croniter

from syncfabric.errors import SyncfabricError
from syncfabric.flows.lease import LeaseBusy
from syncfabric.flows.result import FlowResult

Clock = Callable[[], dt.datetime]
Event = Callable[["Job", str, Any], None]
"""Called with a job, what happened (``started``, ``finished``, ``failed``, ``skipped``) and its detail (the
FlowResult, the error, or why it was skipped)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Job:
    flow: str
    cron: str
    missed: str
    next_due: dt.datetime = field(default=dt.datetime.min.replace(tzinfo=dt.UTC))

    def after(self, moment: dt.datetime) -> dt.datetime:
        """The first fire time after ``moment``."""
        found: dt.datetime = croniter(self.cron, moment).get_next(dt.datetime)
        return found

    def latest(self, moment: dt.datetime) -> dt.datetime:
        """The last fire time at or before ``moment``."""
        found: dt.datetime = croniter(self.cron, moment + dt.timedelta(microseconds=1)).get_prev(dt.datetime)
        return found


def jobs_of(estate) -> list[Job]:
    """The estate's scheduled flows, with their cron expression and missed-run policy."""
    by_entity = {domain.entity: domain.schedule for domain in estate.domains.values() if domain.schedule}
    found = []
    for name, flow in estate.flows.items():
        cron = flow.schedule or (by_entity.get(flow.entities[0]) if flow.direction == "inbound" else None)
        if cron:
            found.append(Job(name, cron, flow.missed))
    return found


class Scheduler:
    """The schedule of one estate over one store. ``clock`` and ``sleep`` can be replaced (tests, simulations)."""

    def __init__(
        self, runtime, *, jobs: list[Job] | None = None, clock: Clock = _now,
        sleep: Callable[[float], None] = time.sleep, run: Callable[[str], FlowResult] | None = None,
        on_event: Event | None = None, grace: dt.timedelta = dt.timedelta(seconds=1),
    ) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.jobs = jobs if jobs is not None else jobs_of(runtime.estate)
        self.clock = clock
        self.sleep = sleep
        self.run_flow = run or runtime.run_flow
        self.on_event = on_event or (lambda _job, _what, _detail: None)
        self.grace = grace
        self.runs = 0

    def start(self) -> None:
        """Plan each job's first fire: after the fire last run (so missed ones are seen), or after now."""
        now = self.clock()
        for job in self.jobs:
            last = self.last_fire(job.flow)
            job.next_due = job.after(last if last is not None else now)

    def last_fire(self, flow: str) -> dt.datetime | None:
        text = self.store.checkpoint(f"schedule:{flow}")
        return dt.datetime.fromisoformat(text) if text else None

    def run(self, *, until: dt.datetime | None = None, max_runs: int | None = None) -> None:
        """Fire due jobs until ``until`` (or forever), sleeping in between."""
        self.start()
        while until is None or self.clock() < until:
            for job in sorted(self.jobs, key=lambda j: j.next_due):
                if job.next_due <= self.clock():
                    self.fire(job)
                if max_runs is not None and self.runs >= max_runs:
                    return
            if not self.jobs:
                if until is None:
                    return
                self.sleep(max((until - self.clock()).total_seconds(), 0))
                continue
            wake = min(job.next_due for job in self.jobs)
            if until is not None:
                wake = min(wake, until)
            self.sleep(max((wake - self.clock()).total_seconds(), 0.0))

    def fire(self, job: Job) -> None:
        """Handle a job that is due: run it, or skip it, by its missed-run policy and its lease."""
        now = self.clock()
        fire = job.latest(now)
        job.next_due = job.after(now)
        if now - fire > self.grace and job.missed == "skip":
            self.on_event(job, "skipped", f"missed the run due at {fire:%Y-%m-%d %H:%M:%S} (missed: skip)")
            return
        try:
            with self.runtime.leases.hold(f"flow:{job.flow}"):
                last = self.last_fire(job.flow)
                if last is not None and last >= fire:
                    self.on_event(job, "skipped", f"the run due at {fire:%H:%M:%S} ran elsewhere")
                    return
                self._run(job, fire)
        except LeaseBusy:
            self.on_event(job, "skipped", "running elsewhere (another process holds its lease)")

    def _run(self, job: Job, fire: dt.datetime) -> None:
        self.on_event(job, "started", fire)
        try:
            result = self.run_flow(job.flow)
        except SyncfabricError as exc:
            self.on_event(job, "failed", exc)
        else:
            self.on_event(job, "finished", result)
        finally:
            with self.store.transaction() as tx:
                tx.set_checkpoint(f"schedule:{job.flow}", fire.isoformat())
            self.runs += 1
        job.next_due = job.after(fire)  # already due if the run overran: the missed-run policy decides
