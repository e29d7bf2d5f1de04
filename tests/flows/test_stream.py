"""Continuous delivery from a real SQLite store to the simulated planning platform over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syncfabric.flows.retry import RetryPolicy
from syncfabric.flows.stream import StreamConsumer
from syncfabric.sandbox.planning_platform import create_app
from syncfabric.sandbox.server import serve
from syncfabric.store import RunStatus, Store, open_store
from tests.flows.delivery_support import FLOW, connector, effective_versions, put_items, running, wait_for

FAST = RetryPolicy(max_attempts=3, base_delay=0.02, max_delay=0.1, jitter=0.2)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve(create_app()) as url:
        yield url


@pytest.fixture
def control(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{base_url}/api/_sandbox") as client:
        client.post("/reset").raise_for_status()
        yield client


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path}/s.db") as opened:
        yield opened


def consumer(store: Store, base_url: str, **options: object) -> StreamConsumer:
    options.setdefault("retry", FAST)
    options.setdefault("poll_interval", 0.02)
    return StreamConsumer(store, FLOW, connector(base_url), entities=["item"], **options)  # type: ignore[arg-type]


def test_changes_are_delivered_as_they_are_recorded_in_per_key_order(store: Store, base_url: str,
                                                                     control: httpx.Client) -> None:
    put_items(store, ("A", "a1"), ("B", "b1"))  # recorded before the consumer starts
    with running(consumer(store, base_url, batch_size=3)) as final:
        wait_for(lambda: store.checkpoint(FLOW) == str(store.head()), what="the backlog")
        for round_ in range(2, 6):  # then a change at a time while it runs
            put_items(store, ("A", f"a{round_}"), ("C", f"c{round_}"), ("B", f"b{round_}"))
        wait_for(lambda: store.checkpoint(FLOW) == str(store.head()), what="the live changes")

    applied = effective_versions(control)
    assert set(applied) == {"A", "B", "C"}
    for key, versions in applied.items():
        assert versions == sorted(set(versions)), f"{key} applied out of order or twice: {versions}"
        row = store.get("item", key)
        assert row is not None and versions[-1] == row.version
    held = httpx.get(f"{base_url}/api/input/item/").json()
    assert {row["name"]: row["description"] for row in held} == {"A": "a5", "B": "b5", "C": "c5"}
    [stats] = final
    assert stats.changes == store.head() == 14 and stats.failures == 0
    [run] = store.runs(FLOW, limit=1)
    assert run.status is RunStatus.SUCCEEDED and run.records_out == stats.delivered
    assert run.detail["mode"] == "stream" and run.detail["checkpoint"] == "14"


def test_a_failing_target_is_retried_and_the_checkpoint_waits_for_its_confirmation(
    store: Store, base_url: str, control: httpx.Client
) -> None:
    put_items(store, ("A", "a1"), ("B", "b1"))
    control.post("/faults", json={"fail_next_n": 4, "fail_status": 503}).raise_for_status()
    stream = consumer(store, base_url)

    stats = stream.run(until_idle=True)

    assert store.checkpoint(FLOW) == "2"
    assert stats.retries >= 3 and stats.failures == 1  # 3 attempts failed, backed off, then 1 more failed
    assert control.get("/received").json()["faults_injected"] == 4
    assert effective_versions(control) == {"A": [1], "B": [1]}


def test_a_restarted_consumer_resumes_from_the_checkpoint_and_resends_nothing_confirmed(
    store: Store, base_url: str, control: httpx.Client
) -> None:
    put_items(store, ("A", "a1"), ("B", "b1"))
    consumer(store, base_url).run(until_idle=True)
    put_items(store, ("A", "a2"))

    again = consumer(store, base_url).run(until_idle=True)

    assert again.changes == 1 and again.delivered == 1
    assert [entry["version"] for entry in control.get("/journal").json()] == [1, 1, 2]
