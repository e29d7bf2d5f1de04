"""Continuous delivery from a real store (SQLite; the poison-record test also on PostgreSQL) to the simulated planning
platform over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syncfabric.flows.retry import RetryPolicy
from syncfabric.flows.stream import StreamConsumer
from syncfabric.store import RunStatus, Store, open_store
from tests.flows.delivery_support import FLOW, connector, effective_versions, put_items, running, wait_for

FAST = RetryPolicy(max_attempts=3, base_delay=0.02, max_delay=0.1, jitter=0.2)


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
    # 3 attempts (2 retries) failed, the health probe met the 4th fault, so no record is blamed: it backed off
    assert stats.retries == 2 and stats.failures == 1 and stats.dead_lettered == 0
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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path}/s.db" if request.param == "sqlite" else request.getfixturevalue("postgres_schema_url")
    with open_store(url) as opened:
        yield opened


def test_a_poison_record_holds_back_its_own_key_only_until_it_is_replayed(any_store: Store, base_url: str,
                                                                          control: httpx.Client) -> None:
    store = any_store
    from syncfabric.flows.deadletters import plan, replay_keys
    from syncfabric.store import DeadLetterStatus

    control.post("/faults", json={"reject_keys": ["B"]}).raise_for_status()
    put_items(store, ("A", "a1"), ("B", "b1"), ("C", "c1"))
    with running(consumer(store, base_url, batch_size=2)):
        wait_for(lambda: store.checkpoint(FLOW) == "3", what="the first changes")
        put_items(store, ("B", "b2"), ("A", "a2"), ("C", "c2"), ("B", "b3"), ("A", "a3"))
        wait_for(lambda: store.checkpoint(FLOW) == "8", what="the later changes")

    assert effective_versions(control) == {"A": [1, 2, 3], "C": [1, 2]}  # other keys flowed on, in order
    letters = store.dead_letters(flow=FLOW)
    assert [(d.record_key, d.version, d.held_by) for d in letters] == [
        ("B", 1, None), ("B", 2, letters[0].id), ("B", 3, letters[0].id)]
    assert "refused" in letters[0].reason and [a.outcome for a in letters[0].attempts] == ["rejected"]
    assert store.held_keys(FLOW) == {("item", "B"): letters[0].id}

    control.post("/faults", json={"reject_keys": []}).raise_for_status()  # the fix
    outcome = replay_keys(store, connector(base_url), plan(store, letters[:1]), retry=FAST)

    assert outcome.delivered == [(FLOW, "item", "B")] and outcome.failed == {}
    assert effective_versions(control)["B"] == [3]  # the newest parked change, once
    assert store.dead_letters(flow=FLOW) == [] and store.held_keys(FLOW) == {}
    assert {d.status for d in store.dead_letters(status=None)} == {DeadLetterStatus.REPLAYED}
    put_items(store, ("B", "b4"))
    consumer(store, base_url).run(until_idle=True)
    assert effective_versions(control)["B"] == [3, 4]


def test_a_replay_the_target_rejects_again_keeps_the_key_held(store: Store, base_url: str,
                                                                control: httpx.Client) -> None:
    from syncfabric.flows.deadletters import plan, replay_keys

    control.post("/faults", json={"reject_keys": ["B"]}).raise_for_status()
    put_items(store, ("B", "b1"))
    consumer(store, base_url).run(until_idle=True)

    outcome = replay_keys(store, connector(base_url), plan(store, store.dead_letters()), retry=FAST, actor="ops")

    [letter] = store.dead_letters(flow=FLOW)
    assert list(outcome.failed) == [letter.id] and "refused" in letter.reason
    assert [a.outcome for a in letter.attempts] == ["rejected", "replay_failed"]
    assert letter.attempts[-1].detail.endswith("(by ops)")
    assert store.held_keys(FLOW) == {("item", "B"): letter.id}


class Killed(BaseException):
    """The process dies: after the target applied a batch, before the checkpoint commits."""


def test_a_consumer_killed_after_the_target_applied_a_batch_duplicates_no_effect(
    store: Store, base_url: str, control: httpx.Client
) -> None:
    from syncfabric.connectors.planning.connector import PlanningConnector

    class DiesAfterSecondWrite(PlanningConnector):
        writes = 0

        def write(self, entity, records):  # type: ignore[no-untyped-def]
            outcome = super().write(entity, records)
            DiesAfterSecondWrite.writes += 1
            if DiesAfterSecondWrite.writes == 2:
                raise Killed
            return outcome

    put_items(store, ("A", "a1"), ("B", "b1"), ("A", "a2"), ("C", "c1"), ("B", "b2"))
    dying = connector(base_url)
    doomed = StreamConsumer(store, FLOW, DiesAfterSecondWrite("planning", dying.config), entities=["item"],
                            batch_size=2, retry=FAST, poll_interval=0.01)
    with pytest.raises(Killed):
        doomed.run(until_idle=True)
    assert store.checkpoint(FLOW) == "2" and store.runs(FLOW, limit=1)[0].status is RunStatus.FAILED

    consumer(store, base_url, batch_size=2).run(until_idle=True)

    assert store.checkpoint(FLOW) == "5"
    assert effective_versions(control) == {"A": [1, 2], "B": [1, 2], "C": [1]}  # each version took effect once
    assert [e["effect"] for e in control.get("/journal").json()].count("duplicate") == 2  # the re-sent batch


def test_a_batch_refused_as_a_whole_is_delivered_record_by_record(store: Store, base_url: str,
                                                                   control: httpx.Client) -> None:
    put_items(store, ("A", "a1"), ("B", "b1"), ("C", "c1"))
    control.post("/faults", json={"fail_next_n": 1, "fail_status": 400}).raise_for_status()

    stats = consumer(store, base_url).run(until_idle=True)

    assert stats.dead_lettered == 0 and stats.delivered == 3 and store.dead_letters() == []
    assert effective_versions(control) == {"A": [1], "B": [1], "C": [1]}


def test_a_target_refusing_our_credentials_dead_letters_nothing(store: Store) -> None:
    from syncfabric.sandbox.planning_platform import create_app
    from syncfabric.sandbox.server import serve

    put_items(store, ("A", "a1"), ("B", "b1"))
    with serve(create_app(token="right")) as url:
        stream = StreamConsumer(store, FLOW, connector(url), entities=["item"], retry=FAST, poll_interval=0.01)
        with running(stream):  # the batch fails, is kept and fails again: still nothing dead-lettered
            wait_for(lambda: stream.stats.failures >= 2, what="two failed rounds of the batch")

    assert stream.stats.failures > 0 and "401" in stream.stats.last_error
    assert store.dead_letters() == [] and store.checkpoint(FLOW) is None


@pytest.mark.parametrize("failing", ["the whole batch", "one record alone"])
def test_a_consumer_told_to_stop_during_a_backoff_ends_at_once_and_keeps_the_batch(
        store: Store, base_url: str, control: httpx.Client, failing: str) -> None:
    """The target keeps failing, the consumer waits a minute before its next attempt; told to stop, it ends within
    seconds, ends its session as stopped, and neither moves the checkpoint nor dead-letters anything."""
    import threading

    put_items(store, ("A", "a1"), ("B", "b1"))
    patient = RetryPolicy(max_attempts=5, base_delay=60.0, max_delay=60.0, jitter=0.0)
    stream = consumer(store, base_url, retry=patient)
    if failing == "the whole batch":  # down: the consumer sits in the retry wait of the batch
        control.post("/faults", json={"fail_next_n": 1000, "fail_status": 503}).raise_for_status()
    else:  # the target refuses the batch and answers: the consumer writes it record by record, and one times out

        def write(entity, records):  # type: ignore[no-untyped-def]
            from syncfabric.errors import PermanentError, TransientError

            if len(records) > 1:
                raise PermanentError("HTTP 400: the batch is refused", system="planning")
            raise TransientError("timed out", system="planning")

        stream.connector.write = write  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=stream.run, args=(stop,), daemon=True)
    thread.start()
    wait_for(lambda: stream.stats.retries >= 1, what="the first retry wait")

    stop.set()
    thread.join(timeout=10)

    assert not thread.is_alive(), "the consumer sat out its backoff after the stop"
    assert store.checkpoint(FLOW) is None and store.dead_letters() == []
    [run] = store.runs(FLOW, limit=1)
    assert run.status is RunStatus.SUCCEEDED and run.detail["ended_by"] == "stopped"


def test_a_change_parked_while_its_key_is_replayed_is_replayed_too(store: Store, base_url: str,
                                                                  control: httpx.Client) -> None:
    from syncfabric.connectors.planning.connector import PlanningConnector
    from syncfabric.flows.deadletters import plan, replay_keys
    from syncfabric.store import NewDeadLetter

    control.post("/faults", json={"reject_keys": ["B"]}).raise_for_status()
    put_items(store, ("B", "b1"))
    consumer(store, base_url).run(until_idle=True)
    control.post("/faults", json={"reject_keys": []}).raise_for_status()
    [poison] = store.dead_letters()
    put_items(store, ("B", "b2"))

    class ParksMeanwhile(PlanningConnector):
        parked = False

        def write(self, entity, records):  # type: ignore[no-untyped-def]
            if not ParksMeanwhile.parked:  # a consumer parks B v2 behind the poison while it is being replayed
                ParksMeanwhile.parked = True
                with store.transaction() as tx:
                    tx.add_dead_letters([NewDeadLetter(FLOW, "planning", "item", "B", 2, 2,
                                                       '{"item_id":"B","base_unit":"EA","description":"b2"}',
                                                       "held", held_by=poison.id)])
            return super().write(entity, records)

    outcome = replay_keys(store, ParksMeanwhile("planning", connector(base_url).config), plan(store, [poison]))

    assert store.dead_letters() == [] and len(outcome.replayed) == 2
    assert effective_versions(control)["B"] == [1, 2]


def test_on_sqlite_a_commit_of_the_same_process_wakes_the_consumer_without_polling(
        store: Store, base_url: str, control: httpx.Client) -> None:
    """A poll interval of 30 s: every change still arrives within the test's 20 s, in per-key order, with three
    threads recording changes of the same keys at once."""
    import threading

    def producer(n: int) -> None:
        for round_ in range(5):
            put_items(store, ("A", f"a{n}-{round_}"), (f"K{n}", f"k{round_}"))

    with running(consumer(store, base_url, poll_interval=30.0, batch_size=4)):
        threads = [threading.Thread(target=producer, args=(n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        wait_for(lambda: store.checkpoint(FLOW) == str(store.head()), what="the changes, without a poll")
    applied = effective_versions(control)
    for key, versions in applied.items():
        assert versions == sorted(set(versions)), f"{key} applied out of order or twice: {versions}"
        row = store.get("item", key)
        assert row is not None and versions[-1] == row.version
    assert set(applied) == {"A", "K0", "K1", "K2"}


def test_a_delivered_batch_waits_for_the_disk_only_when_it_holds_dead_letters(
        store: Store, base_url: str, control: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clean batch's commit may be lost to a power cut (the batch is sent again); a dead letter may not."""
    durable: list[bool] = []
    transaction = store.transaction

    def noted(**options: bool) -> object:
        durable.append(options.get("durable", True))
        return transaction(**options)

    stream = consumer(store, base_url)
    stream._subscription()
    monkeypatch.setattr(store, "transaction", noted)
    put_items(store, ("A", "a1"))
    durable.clear()
    assert stream.step() == 1
    clean = list(durable)
    control.post("/faults", json={"reject_keys": ["B"]}).raise_for_status()
    put_items(store, ("B", "b1"))
    durable.clear()
    assert stream.step() == 1
    assert clean == [False] and durable == [True] and [d.record_key for d in store.dead_letters()] == ["B"]
