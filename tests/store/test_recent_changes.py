"""Change-log reads served from what this process's commits appended answer exactly what the database holds,
also when another writer (another process: here a second store on the same file) commits in between."""

from __future__ import annotations

import random
from pathlib import Path

from syncfabric.store import IncomingRecord, Lineage, Store, open_store
from syncfabric.store.recent import RecentChanges
from syncfabric.store.sqlite import SqliteStore


def write(store: Store, rnd: random.Random) -> None:
    with store.transaction() as tx:
        for entity in rnd.sample(["item", "location", "order"], rnd.randint(1, 2)):
            keys = [f"K{k}" for k in rnd.sample(range(40), rnd.randint(1, 6))]
            if rnd.random() < 0.8:
                tx.apply(entity, [IncomingRecord(key, f'{{"v": {rnd.randint(0, 3)}}}'.encode(), Lineage("mes", key))
                                  for key in keys])
            else:
                tx.delete(entity, keys, Lineage("mes", "delete"))


def test_reads_from_memory_equal_the_database_with_a_second_writer_in_between(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    ours, other = open_store(url), open_store(url)
    ours.migrate()
    assert isinstance(ours, SqliteStore)
    rnd = random.Random(7)
    try:
        for _ in range(200):
            write(ours if rnd.random() < 0.8 else other, rnd)
            for _ in range(3):
                after = rnd.randint(0, ours.head() + 1)
                entities = rnd.choice([None, ["item"], ["order", "location"]])
                limit = rnd.randint(1, 30)
                assert ours.changes(after, entities=entities, limit=limit) == \
                    ours._logged_changes(after, entities=entities, limit=limit), (after, entities, limit)
        # the other store's commits left gaps: the tail restarted after them, and reads before it went to the file
        assert ours._recent._after > 0
    finally:
        ours.close()
        other.close()


def test_a_rolled_back_transaction_leaves_nothing_in_memory(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/store.db")
    store.migrate()
    try:
        try:
            with store.transaction() as tx:
                tx.apply("item", [IncomingRecord("A", b'{"v": 1}', Lineage("erp", "1"))])
                raise RuntimeError("fails before the commit")
        except RuntimeError:
            pass
        assert store.changes(0) == []
        with store.transaction() as tx:
            tx.apply("item", [IncomingRecord("B", b'{"v": 1}', Lineage("erp", "2"))])
        [change] = store.changes(0)
        assert change.key == "B" and change.seq == 1 and change.payload == b'{"v": 1}'
    finally:
        store.close()


def test_the_oldest_commits_are_dropped_and_read_from_the_database(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/store.db")
    store.migrate()
    assert isinstance(store, SqliteStore)
    store._recent = RecentChanges(keep=10)
    try:
        for n in range(30):
            with store.transaction() as tx:
                tx.apply("item", [IncomingRecord(f"K{n}-{i}", b"{}", Lineage()) for i in range(3)])
        assert store._recent._after >= 80  # about the last 10 entries are held
        assert [c.seq for c in store.changes(5, limit=7)] == list(range(6, 13))
        assert [c.seq for c in store.changes(85, limit=100)] == list(range(86, 91))
    finally:
        store.close()
