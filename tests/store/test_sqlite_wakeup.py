"""The embedded store: wakes its consumers at a change-log commit, queues its own writers, reads the log fast."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncfabric.errors import StoreError
from syncfabric.store import IncomingRecord, Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path}/s.db") as opened:
        yield opened


def append(store: Store, key: str) -> None:
    with store.transaction() as tx:
        tx.apply("item", [IncomingRecord(key, f'{{"item_id":"{key}"}}'.encode())])


def test_a_commit_wakes_a_waiting_consumer_which_then_sees_it(store: Store) -> None:
    """Woken only after the commit: every wake-up finds the change that caused it (50 rounds)."""
    seen: list[int] = []
    missed: list[int] = []
    ready = threading.Event()
    done = threading.Event()

    def consumer() -> None:
        after = 0
        while not done.is_set():
            changes = store.changes(after)
            if changes:
                after = changes[-1].seq
                seen.append(after)
                continue
            ready.set()
            started = time.monotonic()
            store.wait_for_changes(30.0)
            if time.monotonic() - started > 10:
                missed.append(after)

    thread = threading.Thread(target=consumer, daemon=True)
    thread.start()
    for n in range(50):
        ready.wait(10)
        ready.clear()
        append(store, f"K{n}")
        deadline = time.monotonic() + 10
        while len(seen) < n + 1 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert len(seen) == n + 1, f"change {n + 1} not seen after its commit"
    done.set()
    append(store, "last")
    thread.join(10)
    assert not missed


def test_a_commit_between_read_and_wait_is_not_slept_through(store: Store) -> None:
    assert store.changes(0) == []
    append(store, "K1")  # committed after the read, before the wait
    started = time.monotonic()
    store.wait_for_changes(30.0)
    assert time.monotonic() - started < 5
    assert [c.key for c in store.changes(0)] == ["K1"]


def test_commits_that_append_nothing_do_not_wake(store: Store) -> None:
    store.changes(0)
    woke: list[float] = []

    def wait() -> None:
        started = time.monotonic()
        store.wait_for_changes(0.5)
        woke.append(time.monotonic() - started)

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.05)
    with store.transaction() as tx:
        tx.set_checkpoint("flow", "7")
    thread.join(5)
    assert woke[0] >= 0.45


def test_writers_of_one_process_queue_and_a_nested_write_still_raises(store: Store) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                append(store, f"W{n}-{i}")
        except BaseException as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    seqs = [c.seq for c in store.changes(0, limit=1000)]
    assert seqs == sorted(seqs) and len(seqs) == 80

    with store.transaction(), pytest.raises(StoreError, match="inside an open write transaction"):
        append(store, "nested")


def test_reading_the_log_from_the_driver_gives_what_the_generic_reader_gives(store: Store) -> None:
    from syncfabric.store import Lineage
    from syncfabric.store.sql import SqlStore

    with store.transaction() as tx:
        tx.apply("item", [IncomingRecord(f"K{n}", f'{{"item_id":"K{n}","n":{n}}}'.encode(),
                                         Lineage("erp", f"items.csv:{n}", "b1", "v2")) for n in range(5)])
        tx.apply("location", [IncomingRecord("P100", b'{"location_id":"P100"}')])
    with store.transaction() as tx:
        tx.delete("item", ["K2"])
    for entities in (None, ["item"], ["location", "item"], []):
        for after, limit in ((0, 1000), (2, 3), (0, 0)):
            fast = store.changes(after, entities=entities, limit=limit)
            generic = SqlStore.changes(store, after, entities=entities, limit=limit)  # type: ignore[arg-type]
            assert fast == generic
    changes = store.changes(0)
    assert changes[-1].payload is None and changes[-1].recorded_at.tzinfo is not None
    assert changes[0].lineage == Lineage("erp", "items.csv:0", "b1", "v2")


def test_another_processes_commit_to_the_log_wakes_a_waiting_consumer(store: Store, tmp_path: Path) -> None:
    """A second store on the same file stands for another process: its commits notify nobody here."""
    other = open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        assert store.changes(0) == []
        woke: list[float] = []

        def wait() -> None:
            started = time.monotonic()
            store.wait_for_changes(30.0)
            woke.append(time.monotonic() - started)

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.1)
        with other.transaction() as tx:  # appends nothing: no wake-up
            tx.set_checkpoint("flow", "7")
        time.sleep(0.1)
        assert not woke
        append(other, "K1")
        thread.join(10)
        assert woke and woke[0] < 5
        assert [c.key for c in store.changes(0)] == ["K1"]
    finally:
        other.close()


def test_a_writer_of_another_process_starts_right_after_the_one_before_commits(store: Store, tmp_path: Path) -> None:
    """SQLite's own busy handler sleeps in steps growing to 100 ms: held for 350 ms, the lock would be taken some
    80 ms after its release. The store retries every fraction of a millisecond."""
    other = open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        append(store, "K0")
        released: list[float] = []
        started = threading.Event()

        def hold() -> None:
            with other.transaction() as tx:
                tx.set_checkpoint("holder", "1")
                started.set()
                time.sleep(0.35)
            released.append(time.monotonic())

        thread = threading.Thread(target=hold)
        thread.start()
        started.wait(5)
        append(store, "K1")  # waits for the other's transaction
        late = time.monotonic() - released[0]
        thread.join(5)
        assert late < 0.04, f"took the lock {late * 1000:.0f} ms after its release"
        assert [c.key for c in store.changes(0)] == ["K0", "K1"]
    finally:
        other.close()
