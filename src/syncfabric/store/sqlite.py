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
and starts the moment it commits. Writers of different processes meet at the file's lock; a writer that finds it
taken tries again every fraction of a millisecond (:data:`WRITE_RETRY`) instead of sleeping in SQLite's busy
handler, whose steps grow to 100 ms. A commit that appended to the change log wakes this process's consumers
waiting in :meth:`SqliteStore.wait_for_changes` at once; a commit of another process within a millisecond
(:data:`CROSS_PROCESS_POLL`: ``PRAGMA data_version``, a look at the WAL index in shared memory).

The small reads a streaming consumer makes around every batch (a checkpoint, the keys its flow holds, the change log
after what this process's commits left in memory) go through a connection of the reading thread's own, kept open
(:meth:`SqliteStore._reader`), in autocommit: each statement reads the latest commit of any connection or process
(WAL). Through the pool each cost a checkout, a ``BEGIN``, a ``ROLLBACK`` and a check-in: 40 µs a read, 8 µs this way.
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
from syncfabric.store import tables as t
from syncfabric.store.base import Change, DeadLetterStatus, Lineage, Op
from syncfabric.store.recent import RecentChanges
from syncfabric.store.sql import BulkWriter, LoggedEntries, SqlStore, as_utc
from syncfabric.store.wal import FALLBACK_PAGES, WalCheckpointer

SYNCHRONOUS = ("off", "normal", "full", "extra")
DEFAULT_BUSY_TIMEOUT_MS = 30_000
CROSS_PROCESS_POLL = (0.001, 0.01, 1.0)
"""How often a consumer waiting for changes asks whether another connection committed (and looks at its stop
event), a few microseconds each time: every millisecond, or every 10 ms once nothing was appended for a second
(an idle consumer then costs about 1% of a core)."""
WRITE_RETRY = (0.0002, 0.002)
"""First and longest pause of a writer waiting for another process's write transaction to end."""
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


_OPS = {op.value: op for op in Op}


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
        self._synchronous = synchronous.upper()
        self._busy_timeout = int(busy_timeout)

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
            f"PRAGMA wal_autocheckpoint = {FALLBACK_PAGES}",  # checkpoints run in a thread of their own (.wal)
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
            if conn.get_execution_options().get(_WRITE):
                _begin_immediate(_driver(conn), int(busy_timeout))
            else:
                conn.exec_driver_sql("BEGIN")

        self._lookup_sql: dict[int, str] = {}
        self._field_sql: dict[int, str] = {}
        self._recent = RecentChanges()
        """What this process's commits appended to the change log, for its own readers (:mod:`.recent`)."""
        self._write_queue = threading.Lock()
        self._appended = threading.Condition()
        self._generation = 0
        """Commits of this process that appended to the change log, counted for waiting consumers."""
        self._readers: list[sqlite3.Connection] = []
        """Per reading thread, its connection for small reads and for waiting (closed with the store)."""
        self._readers_lock = threading.Lock()
        self._wal = WalCheckpointer(path, self._write_queue, self._synchronous)
        super().__init__(url, engine)
        self._checkpoint_writer = BulkWriter(self._checkpoint_upsert, t.checkpoint, engine.dialect)

    @contextmanager
    def _writing(self, action: str, *, durable: bool = True) -> Iterator[Connection]:
        self._check_open()
        self._check_not_writing(action)  # before queueing: a nested write raises instead of waiting for itself
        with self._write_queue:
            self._local.appends = False
            self._local.logged = logged = []
            with super()._writing(action, durable=durable) as conn:
                yield conn
            appended = self._local.appends  # reached only once committed
            self._wal.committed()
            self._recent.committed(logged)  # in commit order: still holding the write queue
        if appended:
            with self._appended:
                self._generation += 1
                self._appended.notify_all()

    def changes(self, after: int, *, entities: Sequence[str] | None = None, limit: int = 1000) -> list[Change]:
        self._local.seen = self._generation  # before reading: a commit that notifies later is one this read missed
        if getattr(self._local, "head", None) is not None:  # the same for other processes' commits, for a thread
            self._local.head = _log_head(self._reader())  # that waits
        if limit <= 0 or (entities is not None and not entities):
            return []
        return self._recent.read(after, entities, limit,
                                 lambda start, n: self._logged_changes(start, entities=entities, limit=n))

    def _write_checkpoint(self, conn: Connection, name: str, value: str) -> None:
        # The driver's statement: through SQLAlchemy's query layer an upsert of one row cost 40 us, 2 us here, and a
        # streaming batch writes three.
        writer = self._checkpoint_writer
        _driver(conn).execute(writer.sql, (name, value, writer.bind("updated_at", dt.datetime.now(dt.UTC))))

    def _logged(
        self, entity: str, op: Op, recorded_at: dt.datetime, seqs: Sequence[int], entries: LoggedEntries
    ) -> None:
        RecentChanges.log(self._local.logged, entity, op, recorded_at, seqs[0], seqs[-1], entries)

    def _logged_changes(self, after: int, *, entities: Sequence[str] | None, limit: int) -> list[Change]:
        """The change log as the database holds it."""
        if limit <= 0:
            return []
        # The driver's rows straight into Changes: the typed SQLAlchemy path parses every time stamp with a regular
        # expression and builds a Row per entry, which made reading the log the consumer's largest cost.
        where = "seq > ?"
        params: list[Any] = [after]
        if entities is not None:
            where += f" AND entity IN ({', '.join('?' * len(entities))})"
            params.extend(entities)
        params.append(limit)
        with self._errors(f"read changes after {after}"):  # the driver's statement: a consumer's every fetch
            rows = self._reader().execute(_CHANGES.format(where=where), tuple(params)).fetchall()
        # The entries of one transaction share their time stamp and operation: each is parsed once per read.
        stamps: dict[str, dt.datetime] = {}
        ops = _OPS
        return [Change(seq, entity, key, version, ops[op], content_hash,
                       None if payload is None else payload.encode(),
                       stamps.get(recorded_at) or stamps.setdefault(recorded_at, as_utc(recorded_at)),
                       Lineage(source_system, source_id, batch_id, mapping_version))
                for (seq, entity, key, version, op, content_hash, payload, recorded_at, source_system, source_id,
                     batch_id, mapping_version) in rows]

    def wait_for_changes(self, timeout: float, stop: threading.Event | None = None) -> None:
        """Return at once if this process committed to the change log since this thread last read it
        (:meth:`changes`), else wait up to ``timeout`` for such a commit, or for another process's commit that
        appended to the log. So a commit between a consumer's read and its wait is not slept through."""
        deadline = time.monotonic() + timeout
        watcher = self._reader()
        head = getattr(self._local, "head", None)
        if head is None:
            head = self._local.head = _log_head(watcher)
        version = _data_version(watcher)
        busy, idle, quiet = CROSS_PROCESS_POLL
        moved = getattr(self._local, "moved", 0.0)
        with self._appended:
            seen = getattr(self._local, "seen", self._generation)
            while self._generation == seen and not (stop is not None and stop.is_set()):
                now = _data_version(watcher)
                if now != version:  # some connection committed: did it append to the log?
                    version = now
                    if _log_head(watcher) > head:
                        self._local.moved = time.monotonic()
                        return
                at = time.monotonic()
                remaining = deadline - at
                if remaining <= 0:
                    return
                self._appended.wait(min(remaining, busy if at - moved < quiet else idle))
            self._local.moved = time.monotonic()

    def _begin_write(self, conn: Connection) -> None:
        conn.execution_options(**{_WRITE: True})
        conn.begin()

    def _relax_commit(self, conn: Connection, relaxed: bool) -> None:
        # Outside the transaction (SQLite refuses to change it inside one). In WAL mode a NORMAL commit is atomic
        # and is made durable by the next FULL commit's flush of the same log, or by the next checkpoint.
        level = "NORMAL" if relaxed else self._synchronous
        _driver(conn).execute(f"PRAGMA synchronous = {level}")

    def _allocate_seqs(self, conn: Connection, n: int) -> list[int]:
        self._local.appends = True
        last = int(_driver(conn).execute(_LAST_SEQ).fetchone()[0])
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

    def _field_rows(self, conn: Connection, entity: str, keys: Sequence[str], name: str | None
                    ) -> Iterable[Sequence[Any]]:
        # The driver's statement, the field read by SQLite (json_extract) for the keys found only: the listener
        # asks this of every batch, whose keys are mostly new.
        sql = self._field_sql.get(len(keys))
        if sql is None:
            sql = self._field_sql[len(keys)] = (
                "SELECT key, CASE WHEN ?1 IS NULL THEN NULL ELSE json_extract(payload, '$.' || ?1) END"
                " FROM sf_state WHERE entity = ?2 AND key IN (" + ",".join("?" * len(keys)) + ")")
        return _driver(conn).execute(sql, (name, entity, *keys)).fetchall()

    # The driver's own statements for what a streaming consumer reads around every batch: through SQLAlchemy's
    # query layer each cost several times the lookup, which made them most of a small batch's time.

    def _reader(self) -> sqlite3.Connection:
        """The calling thread's read connection, opened on first use: autocommit, so that each statement sees the
        latest commit (a read transaction only as long as the statement). For single statements; a walk that must
        see one snapshot across statements reads through :meth:`_reading`."""
        self._check_open()
        reader: sqlite3.Connection | None = getattr(self._local, "reader", None)
        if reader is None:
            with self._errors("open a read connection"):
                reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                reader.execute(f"PRAGMA busy_timeout = {self._busy_timeout}")
            with self._readers_lock:
                self._check_open()  # not one left open by a close meanwhile
                self._readers.append(reader)
            self._local.reader = reader
        return reader

    def checkpoint(self, name: str) -> str | None:
        with self._errors(f"read checkpoint {name!r}"):
            row = self._reader().execute("SELECT value FROM sf_checkpoint WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def held_keys(self, flow: str) -> dict[tuple[str, str], int]:
        with self._errors(f"read the keys {flow} holds"):
            rows = self._reader().execute(
                "SELECT entity, record_key, min(id) FROM sf_dead_letter WHERE flow = ? AND status = ?"
                " GROUP BY entity, record_key", (flow, DeadLetterStatus.OPEN.value)).fetchall()
        return {(entity, key): int(first) for entity, key, first in rows}

    def live_keys(self, entity: str) -> Iterator[str]:
        # The driver's cursor, in the read transaction of one connection: at a million keys, SQLAlchemy's result
        # rows cost more than the scan.
        with self._reading(f"list the keys of {entity}") as conn:
            cursor = _driver(conn).execute("SELECT key FROM sf_state WHERE entity = ? AND deleted = 0", (entity,))
            while rows := cursor.fetchmany(20_000):
                for (key,) in rows:
                    yield key

    def live_inputs(self, entity: str) -> dict[str, str | None]:
        with self._reading(f"read the input hashes of {entity}") as conn:
            cursor = _driver(conn).execute("SELECT key, input_hash FROM sf_state WHERE entity = ? AND deleted = 0",
                                           (entity,))
            return dict(cursor.fetchall())

    def close(self) -> None:
        self._wal.close()
        with self._readers_lock:
            super().close()
            for reader in self._readers:
                reader.close()
            self._readers.clear()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None


def _data_version(watcher: sqlite3.Connection) -> int:
    """Changes whenever another connection (of any process) committed since this one last asked."""
    return int(watcher.execute("PRAGMA data_version").fetchone()[0])


def _log_head(watcher: sqlite3.Connection) -> int:
    return int(watcher.execute("SELECT coalesce(max(seq), 0) FROM sf_change_log").fetchone()[0])


def _begin_immediate(db: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """``BEGIN IMMEDIATE``, retried at short intervals while another process holds the write lock, up to the busy
    timeout (SQLite's own busy handler is off meanwhile: it sleeps in steps growing to 100 ms)."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause, longest = WRITE_RETRY
    db.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:  # any BUSY_*
                    raise
            time.sleep(pause)
            pause = min(pause * 1.5, longest)
    finally:
        db.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")


def _driver(conn: Connection) -> sqlite3.Connection:
    """The sqlite3 connection under ``conn``, inside the transaction ``conn`` began."""
    driver: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
    return driver
