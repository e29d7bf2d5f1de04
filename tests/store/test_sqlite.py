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


def test_the_log_is_checkpointed_off_the_committing_thread_and_the_thread_ends_with_the_store(tmp_path: Path) -> None:
    import threading
    import time

    from syncfabric.store.wal import FALLBACK_PAGES

    path = tmp_path / "store.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SqliteStore)
    try:
        with store.transaction() as tx:
            tx.apply("item", [IncomingRecord(f"K{n}", b'{"n": %d}' % n) for n in range(500)])
            driver = tx._live().connection.driver_connection  # type: ignore[attr-defined]
            assert driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == FALLBACK_PAGES
        deadline = time.monotonic() + 5
        while _rows_in_the_file_alone(path, tmp_path / "copy.db") != 500:  # without its log: checkpointed
            assert time.monotonic() < deadline, "the commit's pages never reached the database file"
            time.sleep(0.02)
        thread = store._wal._thread
        assert thread is not None and thread.is_alive() and thread is not threading.current_thread()
    finally:
        store.close()
    assert not thread.is_alive()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM sf_state").fetchone()[0] == 500


def test_the_log_stays_small_under_commits_that_never_pause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits back to back: each begins before the checkpoint of the one before has ended, so the log would only
    grow (to tens of megabytes in a second here). Past RESTART_PAGES the thread copies the rest holding the write
    queue, and the next commit starts the log over."""
    import time

    from syncfabric.store import wal

    monkeypatch.setattr(wal, "RESTART_PAGES", 50)
    path = tmp_path / "store.db"
    store = open_store(f"sqlite:///{path}")
    biggest = commits = 0
    try:
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            with store.transaction() as tx:
                tx.apply("item", [IncomingRecord(f"K{commits}-{n}", b'{"text": "%s"}' % (b"x" * 200))
                                  for n in range(50)])
            commits += 1
            biggest = max(biggest, Path(f"{path}-wal").stat().st_size)
    finally:
        store.close()
    assert commits > 50
    assert biggest < 3_000_000, f"the log grew to {biggest:,} bytes over {commits} commits"
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM sf_state").fetchone()[0] == commits * 50


def _rows_in_the_file_alone(path: Path, copy: Path) -> int:
    """The state rows of the database file without its write-ahead log (a copy of the file alone)."""
    import shutil

    shutil.copyfile(path, copy)
    try:
        with sqlite3.connect(copy) as conn:
            return int(conn.execute("SELECT count(*) FROM sf_state").fetchone()[0])
    except sqlite3.DatabaseError:  # copied halfway through a checkpoint, or before the tables reached the file
        return -1
    finally:
        copy.unlink()
        for extra in ("-wal", "-shm"):
            Path(f"{copy}{extra}").unlink(missing_ok=True)
