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
