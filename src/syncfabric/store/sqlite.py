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

Within one process, writers first queue on a lock of the store's own, so that a writer waits for the one before it
and starts the moment it commits, instead of sleeping in SQLite's busy handler (steps of up to 100 ms); writers in
other processes still meet at the file's lock. A commit that appended to the change log wakes this process's
consumers waiting in :meth:`SqliteStore.wait_for_changes` at once; commits by other processes are seen at the next
poll.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, create_engine, event, make_url
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import ArgumentError

from syncfabric.errors import ConfigError, StoreError
from syncfabric.store.base import Change, Lineage, Op
from syncfabric.store.sql import SqlStore

SYNCHRONOUS = ("off", "normal", "full", "extra")
DEFAULT_BUSY_TIMEOUT_MS = 30_000
STOP_CHECK = 0.02
"""How often a consumer waiting for changes looks at its stop event."""
_WRITE = "syncfabric_write"
"""Execution option marking a connection whose transaction must begin IMMEDIATE (take the write lock up front)."""

_LAST_SEQ = (
    "SELECT max(coalesce((SELECT max(seq) FROM sf_change_log), 0),"
    " coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'sf_change_log'), 0))"
)
"""The highest sequence ever handed out: the log's maximum, or AUTOINCREMENT's memory of it if the tail was removed."""


_CHANGES = (
    "SELECT seq, entity, key, version, op, content_hash, payload, recorded_at, source_system, source_id, batch_id,"
    " mapping_version FROM sf_change_log WHERE {where} ORDER BY seq LIMIT ?"
)


def _utc(stamp: str | dt.datetime) -> dt.datetime:
    """A stored time stamp (SQLite keeps UTC as naive ISO text) as an aware UTC datetime."""
    value = stamp if isinstance(stamp, dt.datetime) else dt.datetime.fromisoformat(stamp)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


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
        self._write_queue = threading.Lock()
        self._appended = threading.Condition()
        self._generation = 0
        """Commits of this process that appended to the change log, counted for waiting consumers."""
        super().__init__(url, engine)

    @contextmanager
    def _writing(self, action: str) -> Iterator[Connection]:
        self._check_open()
        self._check_not_writing(action)  # before queueing: a nested write raises instead of waiting for itself
        with self._write_queue:
            self._local.appends = False
            with super()._writing(action) as conn:
                yield conn
            appended = self._local.appends  # reached only once committed
        if appended:
            with self._appended:
                self._generation += 1
                self._appended.notify_all()

    def changes(self, after: int, *, entities: Sequence[str] | None = None, limit: int = 1000) -> list[Change]:
        self._local.seen = self._generation  # before reading: a commit that notifies later is one this read missed
        if limit <= 0 or (entities is not None and not entities):
            return []
        # The driver's rows straight into Changes: the typed SQLAlchemy path parses every time stamp with a regular
        # expression and builds a Row per entry, which made reading the log the consumer's largest cost.
        where = "seq > ?"
        params: list[Any] = [after]
        if entities is not None:
            where += f" AND entity IN ({', '.join('?' * len(entities))})"
            params.extend(entities)
        params.append(limit)
        with self._reading(f"read changes after {after}") as conn:
            rows = conn.exec_driver_sql(_CHANGES.format(where=where), tuple(params)).fetchall()
        return [Change(seq, entity, key, version, Op(op), content_hash,
                       None if payload is None else payload.encode(), _utc(recorded_at),
                       Lineage(source_system, source_id, batch_id, mapping_version))
                for (seq, entity, key, version, op, content_hash, payload, recorded_at, source_system, source_id,
                     batch_id, mapping_version) in rows]

    def wait_for_changes(self, timeout: float, stop: threading.Event | None = None) -> None:
        """Return at once if this process committed to the change log since this thread last read it
        (:meth:`changes`), else wait up to ``timeout`` for such a commit; other processes' commits are seen at the
        next poll. So a commit between a consumer's read and its wait is not slept through."""
        deadline = time.monotonic() + timeout
        with self._appended:
            seen = getattr(self._local, "seen", self._generation)
            while self._generation == seen and not (stop is not None and stop.is_set()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._appended.wait(min(remaining, STOP_CHECK))  # a set stop is noticed within STOP_CHECK

    def _begin_write(self, conn: Connection) -> None:
        conn.execution_options(**{_WRITE: True})
        conn.begin()

    def _allocate_seqs(self, conn: Connection, n: int) -> list[int]:
        self._local.appends = True
        last = int(conn.exec_driver_sql(_LAST_SEQ).scalar_one())
        return list(range(last + 1, last + 1 + n))

    def _lookup_rows(self, conn: Connection, entity: str, keys: Sequence[str]) -> Iterable[Sequence[Any]]:
        # The driver's own statement for the chunk's size: on batches of thousands of keys SQLAlchemy's expanding
        # IN costs more than the lookup itself.
        sql = self._lookup_sql.get(len(keys))
        if sql is None:
            sql = self._lookup_sql[len(keys)] = (
                "SELECT key, version, content_hash, deleted, input_hash FROM sf_state WHERE entity = ? AND key IN ("
                + ",".join("?" * len(keys)) + ")")
        return _driver(conn).execute(sql, (entity, *keys)).fetchall()

    def live_keys(self, entity: str) -> Iterator[str]:
        # The driver's cursor, in the read transaction of one connection: at a million keys, SQLAlchemy's result
        # rows cost more than the scan.
        with self._reading(f"list the keys of {entity}") as conn:
            cursor = _driver(conn).execute("SELECT key FROM sf_state WHERE entity = ? AND deleted = 0", (entity,))
            while rows := cursor.fetchmany(20_000):
                for (key,) in rows:
                    yield key

    def input_hashes(self, entity: str) -> dict[str, str]:
        with self._reading(f"read the input hashes of {entity}") as conn:
            cursor = _driver(conn).execute(
                "SELECT input_hash, key FROM sf_state WHERE entity = ? AND deleted = 0 AND input_hash IS NOT NULL",
                (entity,))
            return dict(cursor.fetchall())

    def close(self) -> None:
        super().close()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None


def _driver(conn: Connection) -> sqlite3.Connection:
    """The sqlite3 connection under ``conn``, inside the transaction ``conn`` began."""
    driver: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
    return driver
