"""The embedded store: one SQLite file in WAL mode, zero setup.

URLs: ``sqlite:///relative/store.db`` or ``sqlite:////absolute/store.db`` (the folder is created). ``sqlite://`` and
``sqlite:///:memory:`` give a throwaway store in a temporary file removed on :meth:`close` (a true in-memory database
could not be shared by the pool's connections, one per thread).

Query options:

- ``synchronous=off|normal|full|extra`` (default ``full``): with ``full`` a committed transaction survives a power
  cut; ``normal`` is faster and in WAL mode never corrupts the file, but may lose the last commits on power loss.
- ``busy_timeout=MILLISECONDS`` (default 30000): how long a writer waits for another writer before failing.

Writers are serialized by ``BEGIN IMMEDIATE`` (the file's write lock, across threads and processes), so a writer
reads the versions it bumps without a race and change-log sequence order is commit order. Readers never wait for
writers (WAL) and see committed data only.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, create_engine, event, make_url
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import ArgumentError

from syncfabric.errors import ConfigError, StoreError
from syncfabric.store.sql import SqlStore

SYNCHRONOUS = ("off", "normal", "full", "extra")
DEFAULT_BUSY_TIMEOUT_MS = 30_000
_WRITE = "syncfabric_write"
"""Execution option marking a connection whose transaction must begin IMMEDIATE (take the write lock up front)."""

_LAST_SEQ = (
    "SELECT max(coalesce((SELECT max(seq) FROM sf_change_log), 0),"
    " coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'sf_change_log'), 0))"
)
"""The highest sequence ever handed out: the log's maximum, or AUTOINCREMENT's memory of it if the tail was removed."""


class SqliteStore(SqlStore):
    """The canonical store in one SQLite file."""

    insert = staticmethod(sqlite_insert)
    _driver_errors = (sqlite3.Error,)

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigError([f"invalid store URL: {exc}"]) from None
        if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise ConfigError([f"{parsed.drivername!r} is not a SQLite store URL; use sqlite:///FILE"])
        options = dict(parsed.query)
        synchronous = str(options.pop("synchronous", "full")).lower()
        if synchronous not in SYNCHRONOUS:
            raise ConfigError([f"store URL: synchronous must be one of {', '.join(SYNCHRONOUS)}, got {synchronous!r}"])
        busy_timeout = str(options.pop("busy_timeout", DEFAULT_BUSY_TIMEOUT_MS))
        if not busy_timeout.isdigit():
            raise ConfigError([f"store URL: busy_timeout must be milliseconds, got {busy_timeout!r}"])
        if options:
            raise ConfigError([f"store URL: unknown options {sorted(options)}; known: synchronous, busy_timeout"])

        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if not parsed.database or parsed.database == ":memory:":
            self._tmpdir = tempfile.TemporaryDirectory(prefix="syncfabric-store-")
            path = Path(self._tmpdir.name) / "store.db"
        else:
            path = Path(parsed.database).expanduser()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder of the store {path}: {exc}") from exc
        self.path = path

        engine = create_engine(
            URL.create("sqlite+pysqlite", database=str(path)),
            # The pool hands a connection to whichever thread asks; each is used by one thread at a time.
            connect_args={"check_same_thread": False},
        )
        pragmas = (
            f"PRAGMA busy_timeout = {int(busy_timeout)}",
            "PRAGMA journal_mode = WAL",
            f"PRAGMA synchronous = {synchronous.upper()}",
            "PRAGMA foreign_keys = ON",
        )

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
            # The driver's own implicit BEGIN is off: transactions begin in _begin below, DEFERRED for readers and
            # IMMEDIATE for writers, and DDL stays inside them (migrations are atomic).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                for pragma in pragmas:
                    cursor.execute(pragma)
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

        self._lookup_sql: dict[int, str] = {}
        super().__init__(url, engine)

    def _begin_write(self, conn: Connection) -> None:
        conn.execution_options(**{_WRITE: True})
        conn.begin()

    def _allocate_seqs(self, conn: Connection, n: int) -> list[int]:
        last = int(conn.exec_driver_sql(_LAST_SEQ).scalar_one())
        return list(range(last + 1, last + 1 + n))

    def _lookup_rows(self, conn: Connection, entity: str, keys: Sequence[str]) -> Iterable[Sequence[Any]]:
        # The driver's own statement for the chunk's size: on batches of thousands of keys SQLAlchemy's expanding
        # IN costs more than the lookup itself.
        sql = self._lookup_sql.get(len(keys))
        if sql is None:
            sql = self._lookup_sql[len(keys)] = (
                "SELECT key, version, content_hash, deleted FROM sf_state WHERE entity = ? AND key IN ("
                + ",".join("?" * len(keys)) + ")")
        return conn.exec_driver_sql(sql, (entity, *keys)).fetchall()

    def close(self) -> None:
        super().close()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
