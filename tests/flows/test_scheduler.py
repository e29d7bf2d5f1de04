"""The scheduler: cron fire times on a fake clock (runs take the time a test says), missed-run policies, leases that
keep two schedulers on one PostgreSQL store from overlapping (real time, seconds-field cron), and ``syncfabric run``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from syncfabric.config import load_estate
from syncfabric.flows.result import FlowResult
from syncfabric.flows.runtime import Runtime
from syncfabric.flows.scheduler import Job, Scheduler, jobs_of
from syncfabric.sandbox.legacy_erp import LegacyErp
from syncfabric.store import open_store

EXAMPLE = Path(__file__).parents[2] / "examples" / "walking-skeleton" / "estate.yaml"
T0 = dt.datetime(2026, 11, 2, 12, 0, 0, tzinfo=dt.UTC)


class FakeClock:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def make_estate(root: Path, schedule: str, missed: str = "skip") -> Path:
    LegacyErp(root / "drop" / "erp-legacy", seed=2, item_count=30).export()
    text = EXAMPLE.read_text()
    flow = '    source: "items_*.csv"\n'
    assert flow in text
    (root / "estate.yaml").write_text(text.replace(flow, f'{flow}    schedule: "{schedule}"\n    missed: {missed}\n'))
    return root / "estate.yaml"


@pytest.fixture
def runtime_for(tmp_path: Path):
    opened: list[Runtime] = []

    def make(schedule: str, missed: str = "skip", store=None) -> Runtime:
        root = tmp_path / f"estate{len(opened)}"
        runtime = Runtime(load_estate(make_estate(root, schedule, missed), environ={}), store=store)
        opened.append(runtime)
        return runtime

    yield make
    for runtime in opened:
        runtime.close()


def scheduled(runtime: Runtime, clock: FakeClock, *, takes: float = 0.0) -> tuple[Scheduler, list[tuple]]:
    """A scheduler of the items flow on the fake clock; each run really runs the flow, then takes ``takes``
    seconds of the clock."""
    events: list[tuple] = []

    def run(name: str) -> FlowResult:
        result = runtime.run_flow(name)
        clock.sleep(takes)
        return result

    jobs = [job for job in jobs_of(runtime.estate) if job.flow == "items-in"]
    scheduler = Scheduler(runtime, jobs=jobs, clock=clock, sleep=clock.sleep, run=run,
                          on_event=lambda job, what, detail: events.append((clock.now, what, detail)))
    return scheduler, events


def started(events: list[tuple]) -> list[str]:
    return [f"{detail:%H:%M:%S}" for _, what, detail in events if what == "started"]


def test_flows_run_at_their_cron_fire_times(runtime_for) -> None:
    runtime = runtime_for("* * * * * */10")  # every ten seconds (the sixth field is seconds)
    clock = FakeClock(T0 + dt.timedelta(seconds=3))
    scheduler, events = scheduled(runtime, clock)

    scheduler.run(until=T0 + dt.timedelta(minutes=1))

    assert started(events) == ["12:00:10", "12:00:20", "12:00:30", "12:00:40", "12:00:50"]
    runs = runtime.store.runs("items-in", limit=10)
    assert len(runs) == 5
    assert runs[-1].records_in > 0 and all(run.records_in == 0 for run in runs[:-1])  # the export is read once
    assert scheduler.last_fire("items-in") == T0 + dt.timedelta(seconds=50)


def test_the_domain_schedule_applies_to_flows_without_their_own(runtime_for) -> None:
    runtime = runtime_for("0 3 * * *")
    jobs = {job.flow: job.cron for job in jobs_of(runtime.estate)}
    assert jobs["items-in"] == "0 3 * * *"
    assert jobs["inventory-in"] == "0 2 * * *"  # from its domain
    assert "planning-out" not in jobs  # an outbound flow runs on its own schedule only
    assert Job("x", "0 2 * * *", "skip").after(T0) == dt.datetime(2026, 11, 3, 2, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("missed", "expected"), [("skip", ["14:00:00"]), ("run_once", ["13:30:00", "14:00:00"])])
def test_runs_missed_while_no_scheduler_ran_follow_the_policy(runtime_for, missed: str, expected: list[str]) -> None:
    runtime = runtime_for("0 * * * *", missed)
    with runtime.store.transaction() as tx:  # the last run was at 11:00; then the scheduler was down
        tx.set_checkpoint("schedule:items-in", (T0 - dt.timedelta(hours=1)).isoformat())
    clock = FakeClock(T0 + dt.timedelta(minutes=90))
    scheduler, events = scheduled(runtime, clock)

    scheduler.run(until=T0 + dt.timedelta(hours=2, seconds=30))

    assert [f"{clock_at:%H:%M:%S}" for clock_at, what, _ in events if what == "started"] == expected
    assert [what for _, what, _ in events if what == "skipped"] == (["skipped"] if missed == "skip" else [])
    assert len(runtime.store.runs("items-in", limit=10)) == len(expected)


@pytest.mark.parametrize(("missed", "expected"), [("skip", ["12:00:10", "12:00:40"]),
                                                 ("run_once", ["12:00:10", "12:00:30", "12:01:00"])])
def test_a_run_that_overruns_its_next_fire_times_never_overlaps_and_follows_the_policy(
        runtime_for, missed: str, expected: list[str]) -> None:
    runtime = runtime_for("* * * * * */10", missed)
    clock = FakeClock(T0 + dt.timedelta(seconds=5))
    scheduler, events = scheduled(runtime, clock, takes=25)

    scheduler.run(until=T0 + dt.timedelta(seconds=65))

    assert started(events) == expected
    finished = [at for at, what, _ in events if what == "finished"]
    begun = [at for at, what, _ in events if what == "started"]
    assert all(end <= nxt for end, nxt in zip(finished, begun[1:], strict=False))


@pytest.mark.postgres
def test_two_schedulers_on_one_postgres_store_never_run_a_flow_at_once(runtime_for, postgres_schema_url) -> None:
    intervals: list[tuple[float, float, str]] = []
    skipped: list[str] = []
    threads = []
    until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    for name in ("one", "two"):
        runtime = runtime_for("* * * * * *", store=open_store(postgres_schema_url))  # every second

        def run(flow: str, runtime: Runtime = runtime, name: str = name) -> FlowResult:
            began = time.monotonic()
            result = runtime.run_flow(flow)
            time.sleep(1.3)  # longer than the schedule's period
            intervals.append((began, time.monotonic(), name))
            return result

        jobs = [job for job in jobs_of(runtime.estate) if job.flow == "items-in"]
        scheduler = Scheduler(runtime, jobs=jobs, run=run,
                              on_event=lambda job, what, detail: skipped.append(str(detail)) if what == "skipped"
                              else None)
        threads.append(threading.Thread(target=scheduler.run, kwargs={"until": until}))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    intervals.sort()
    assert len(intervals) >= 2
    for (_, end, _), (begin, _, _) in itertools.pairwise(intervals):
        assert end <= begin, f"two runs of one flow overlapped: {intervals}"
    assert skipped, "the schedulers never met"
    with open_store(postgres_schema_url) as store:
        fired = store.runs("items-in", limit=50)
        assert len(fired) == len(intervals)  # every run recorded once, none run twice for one fire


def test_syncfabric_run_schedules_in_the_foreground_and_shows_summaries(tmp_path: Path) -> None:
    estate = make_estate(tmp_path, "* * * * * *")
    done = subprocess.run([sys.executable, "-m", "syncfabric.cli", "run", "--flow", "items-in", "--duration", "3.2",
                           "--estate", str(estate)], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert "Schedule" in done.stdout and "* * * * * *" in done.stdout
    assert "items-in started" in done.stdout
    assert "What moved" in done.stdout
    with open_store(f"sqlite:///{tmp_path}/.syncfabric/syncfabric.db") as store:
        runs = store.runs("items-in", limit=10)
    assert 1 <= len(runs) <= 4  # one a second for about 3 s, fewer when the machine is slow (missed: skip)
    assert done.stdout.count("items-in started") == len(runs)

    unscheduled = subprocess.run([sys.executable, "-m", "syncfabric.cli", "run", "--flow", "planning-out",
                                  "--estate", str(estate)], capture_output=True, text=True, timeout=60)
    assert unscheduled.returncode == 2 and "no scheduled flows" in unscheduled.stderr
