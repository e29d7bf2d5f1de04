"""The dead-letter store and alerts, on every backend: what an outbound flow could not deliver, and what it did."""

from __future__ import annotations

import datetime as dt

import pytest

from syncfabric.errors import StoreError
from syncfabric.store import Attempt, DeadLetterStatus, NewDeadLetter, Store, open_store

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(any_store: Store) -> Store:
    return any_store


def letter(key: str, seq: int, *, flow: str = "out", held_by: int | None = None, **extra: object) -> NewDeadLetter:
    return NewDeadLetter(flow=flow, system="planning", entity="item", record_key=key, seq=seq, version=seq,
                         payload=None if extra.get("deleted") else f'{{"item_id":"{key}"}}',
                         reason="unit BOX is not configured" if held_by is None else f"held behind #{held_by}",
                         attempts=[Attempt(NOW, "failed", "503"), Attempt(NOW + dt.timedelta(seconds=1), "rejected",
                                                                        "unit BOX")], held_by=held_by)


def test_dead_letters_keep_key_change_payload_reason_and_attempts(store: Store) -> None:
    with store.transaction() as tx:
        first, parked = tx.add_dead_letters([letter("B", 2), letter("B", 5, held_by=None, deleted=True)])
    [one, two] = store.dead_letters(flow="out")
    assert (one.id, one.record_key, one.seq, one.version, one.status) == (first, "B", 2, 2, DeadLetterStatus.OPEN)
    assert one.payload == '{"item_id":"B"}' and two.payload is None and two.id == parked
    assert [(a.outcome, a.detail, a.at) for a in one.attempts] == [
        ("failed", "503", NOW), ("rejected", "unit BOX", NOW + dt.timedelta(seconds=1))]
    assert one.reason == "unit BOX is not configured"


def test_open_dead_letters_hold_their_keys_per_flow(store: Store) -> None:
    with store.transaction() as tx:
        poison = tx.add_dead_letters([letter("B", 2)])[0]
        tx.add_dead_letters([letter("B", 4, held_by=poison), letter("C", 3, flow="other")])
    assert store.held_keys("out") == {("item", "B"): poison}
    assert store.dead_letter_counts() == {"other": 1, "out": 2}

    with store.transaction() as tx:
        ids = [d.id for d in store.dead_letters(flow="out", key="B")]
        tx.update_dead_letters(ids, Attempt(NOW, "replayed", "accepted"), status=DeadLetterStatus.REPLAYED)

    assert store.held_keys("out") == {}
    assert store.dead_letters(flow="out") == []
    [replayed, _] = store.dead_letters(status=DeadLetterStatus.REPLAYED, flow="out")
    assert replayed.attempts[-1].outcome == "replayed" and replayed.updated_at >= replayed.created_at


def test_updating_an_unknown_dead_letter_fails_and_changes_nothing(store: Store) -> None:
    with store.transaction() as tx:
        known = tx.add_dead_letters([letter("B", 2)])[0]
    with pytest.raises(StoreError, match="no dead letter 999"), store.transaction() as tx:
        tx.update_dead_letters([known, 999], Attempt(NOW, "discarded"), status=DeadLetterStatus.DISCARDED)
    [entry] = store.dead_letters(ids=[known])
    assert entry.status is DeadLetterStatus.OPEN and len(entry.attempts) == 2


def test_an_update_of_many_dead_letters_keeps_each_ones_own_history(store: Store) -> None:
    count = 1234  # more than one chunk of ids
    with store.transaction() as tx:
        ids = tx.add_dead_letters([letter(f"K{n}", n + 1) for n in range(count)])
    with store.transaction() as tx:  # every third gets an attempt more, so that the histories differ
        tx.update_dead_letters(ids[::3], Attempt(NOW, "replay_failed", "still BOX"))
    with store.transaction() as tx:
        tx.update_dead_letters(ids, Attempt(NOW + dt.timedelta(minutes=1), "discarded", "by ops"),
                               status=DeadLetterStatus.DISCARDED, reason="given up")

    entries = {e.id: e for e in store.dead_letters(status=DeadLetterStatus.DISCARDED)}
    assert sorted(entries) == sorted(ids)
    for n, entry_id in enumerate(ids):
        entry = entries[entry_id]
        expected = ["failed", "rejected", *(["replay_failed"] if n % 3 == 0 else []), "discarded"]
        assert [a.outcome for a in entry.attempts] == expected, entry.record_key
        assert entry.record_key == f"K{n}" and entry.reason == "given up"
    with pytest.raises(StoreError, match="no dead letter 999999"), store.transaction() as tx:
        tx.update_dead_letters([*ids, 999999], Attempt(NOW, "replayed"), status=DeadLetterStatus.REPLAYED)
    assert store.dead_letters(status=DeadLetterStatus.REPLAYED) == []


def test_alerts_are_kept_newest_first(store: Store) -> None:
    store.raise_alert("out", "fallback", "target down 60 s", {"outage_seconds": 61.5})
    store.raise_alert("out", "recovered", "streaming again")
    store.raise_alert("other", "fallback", "lag")
    assert [(a.kind, a.detail) for a in store.alerts("out")] == [("recovered", {}), ("fallback",
                                                                                    {"outage_seconds": 61.5})]
    assert len(store.alerts()) == 3 and store.alerts(limit=1)[0].flow == "other"


def test_waiting_for_changes_returns_at_a_commit_or_the_timeout(store: Store) -> None:
    import threading
    import time

    started = time.monotonic()
    store.wait_for_changes(0.2)
    assert time.monotonic() - started >= 0.19  # nothing committed: the whole timeout

    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    store.wait_for_changes(5.0, stop)
    assert time.monotonic() - started < 1.0  # a set stop event does not wait


@pytest.mark.postgres
def test_a_postgres_commit_wakes_a_waiting_consumer(postgres_schema_url: str) -> None:
    import threading
    import time

    from syncfabric.store import IncomingRecord

    with open_store(postgres_schema_url) as store:
        woke: list[float] = []

        def wait() -> None:
            store.wait_for_changes(30.0)
            woke.append(time.monotonic())

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        started = time.monotonic()
        for n in range(50):  # commit until the waiter (which first opens its listening connection) wakes
            with store.transaction() as tx:
                tx.apply("item", [IncomingRecord(f"K{n}", b'{"item_id":"K"}')])
            if woke or waiter.join(timeout=0.2) or woke:
                break
        waiter.join(timeout=10)

    assert woke and woke[0] - started < 10.0  # woken by a commit, long before its 30 s timeout
