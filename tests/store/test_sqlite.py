"""The SQLite store: the conformance suite, plus what only the embedded backend does."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from syncfabric.errors import ConfigError
from syncfabric.store import IncomingRecord, open_store
from syncfabric.store.sqlite import SqliteStore
from tests.store.conformance import StoreConformance


class TestSqliteStore(StoreConformance):
    store_class = SqliteStore

    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path}/state/store.db"


def _pragma(path: Path, name: str) -> object:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_creates_the_folder_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "store.db"
    with open_store(f"sqlite:///{path}") as store:
        assert isinstance(store, SqliteStore) and store.path == path
        with store.transaction() as tx:
            tx.apply("item", [IncomingRecord("A", b"{}")])
    assert _pragma(path, "journal_mode") == "wal"


@pytest.mark.parametrize(("query", "expected"), [("", 2), ("?synchronous=normal", 1), ("?synchronous=OFF", 0)])
def test_synchronous_defaults_to_full_and_follows_the_url(tmp_path: Path, query: str, expected: int) -> None:
    with open_store(f"sqlite:///{tmp_path}/store.db{query}") as store:
        assert isinstance(store, SqliteStore)
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == expected
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30_000


def test_busy_timeout_follows_the_url(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/store.db?busy_timeout=1500") as store:
        assert isinstance(store, SqliteStore)
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 1500


@pytest.mark.parametrize("query", ["?synchronous=sometimes", "?busy_timeout=soon", "?cache=shared"])
def test_bad_url_options_are_config_errors(tmp_path: Path, query: str) -> None:
    with pytest.raises(ConfigError):
        open_store(f"sqlite:///{tmp_path}/store.db{query}")


def test_a_throwaway_store_lives_in_a_temporary_file(tmp_path: Path) -> None:
    for url in ("sqlite://", "sqlite:///:memory:"):
        store = open_store(url)
        assert isinstance(store, SqliteStore)
        with store.transaction() as tx:
            tx.apply("item", [IncomingRecord("A", b"{}")])
        assert store.count("item") == 1
        folder = store.path.parent
        store.close()
        assert not folder.exists()


def test_migrations_ship_inside_the_package() -> None:
    import syncfabric.store

    migrations = Path(syncfabric.store.__file__).parent / "migrations"
    assert (migrations / "env.py").is_file()
    assert (migrations / "script.py.mako").is_file()
    assert (migrations / "versions" / "0001_initial.py").is_file()


def test_a_commit_that_does_not_wait_for_the_disk_is_kept_and_leaves_its_connection_durable(tmp_path: Path) -> None:
    """``transaction(durable=False)`` commits with ``synchronous = NORMAL``; the connection goes back to the pool
    with the store's level (FULL), after a commit and after a rollback alike."""
    with open_store(f"sqlite:///{tmp_path}/s.db") as store:
        with store.transaction(durable=False) as tx:
            tx.set_checkpoint("out", "7")
            relaxed = tx._conn.exec_driver_sql("PRAGMA synchronous").scalar()  # type: ignore[union-attr]
        assert relaxed == 1  # NORMAL
        with pytest.raises(RuntimeError), store.transaction(durable=False) as tx:
            tx.set_checkpoint("out", "8")
            raise RuntimeError("the batch failed")
        assert store.checkpoint("out") == "7"
        levels = []
        for _ in range(3):  # whichever pooled connection the next writers get
            with store.transaction() as tx:
                levels.append(tx._conn.exec_driver_sql("PRAGMA synchronous").scalar())  # type: ignore[union-attr]
        assert levels == [2, 2, 2]


def test_small_reads_see_what_other_connections_commit(tmp_path: Path) -> None:
    """A checkpoint, the held keys and the change log are read through the thread's own connection, kept open:
    each read still sees what another store (another process) committed since the last one."""
    url = f"sqlite:///{tmp_path}/s.db"
    with open_store(url) as store, open_store(url) as other:
        assert store.checkpoint("out") is None and store.held_keys("out") == {} and store.changes(0) == []
        with other.transaction() as tx:
            tx.set_checkpoint("out", "7")
            tx.apply("item", [IncomingRecord("A", b"{}")])
        assert store.checkpoint("out") == "7"
        assert [change.key for change in store.changes(0)] == ["A"]
        with sqlite3.connect(tmp_path / "s.db") as raw:  # not even through a store
            raw.execute("UPDATE sf_checkpoint SET value = '8' WHERE name = 'out'")
        assert store.checkpoint("out") == "8"


def test_each_thread_reads_through_its_own_connection_closed_with_the_store(tmp_path: Path) -> None:
    import threading

    from syncfabric.errors import StoreError

    store = open_store(f"sqlite:///{tmp_path}/s.db")
    assert isinstance(store, SqliteStore)
    with store.transaction() as tx:
        tx.set_checkpoint("out", "7")
    readers: dict[str, sqlite3.Connection] = {}
    seen: list[str | None] = []

    def read(name: str) -> None:
        seen.append(store.checkpoint("out"))
        readers[name] = store._reader()

    for name in ("first", "second"):
        thread = threading.Thread(target=read, args=(name,))
        thread.start()
        thread.join()
    read("main")
    assert store._reader() is readers["main"]  # kept for the thread's next reads
    assert seen == ["7", "7", "7"] and len({id(reader) for reader in readers.values()}) == 3
    store.close()
    for reader in readers.values():
        with pytest.raises(sqlite3.ProgrammingError):  # closed
            reader.execute("SELECT 1")
    with pytest.raises(StoreError):
        store.checkpoint("out")
