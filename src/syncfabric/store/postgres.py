"""The scale-out store: the same tables in PostgreSQL, through psycopg 3.

URLs: ``postgresql://user:password@host:5432/db`` or ``postgres://...`` (both mean the psycopg 3 driver,
``postgresql+psycopg://``); libpq query options pass through (``?sslmode=require``, ``?options=-csearch_path%3Dx``).
Needs the ``postgres`` extra: ``pip install syncfabric[postgres]``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import msgspec
from sqlalchemy import Connection, Dialect, Table, create_engine, make_url, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import ArgumentError

from syncfabric.errors import ConfigError
from syncfabric.store import tables as t
from syncfabric.store.sql import STATE_UPDATES, BulkWriter, SqlStore

CHANGE_CHANNEL = "sf_change_log"
"""The notification channel every commit that appends to the change log notifies (``NOTIFY sf_change_log``)."""
WRITE_LOCK_KEY = 0x5346_5354_4F52_4531
"""The advisory lock every write transaction takes (the bytes of ``SFSTORE1``)."""

_LOOKUP = text(
    "SELECT s.key, s.version, s.content_hash, s.deleted, s.input_hash FROM unnest(CAST(:keys AS TEXT[])) AS k(key)"
    " CROSS JOIN LATERAL (SELECT key, version, content_hash, deleted, input_hash FROM sf_state"
    " WHERE entity = :entity AND key = k.key LIMIT 1) AS s"
)
"""One primary-key probe per key, whatever the statistics say.

A plain ``key IN (...)`` is planned from statistics; on a table loaded faster than autovacuum analyzes it (an
initial full load) the planner believes the table tiny and filters every row of the entity against the list: each
lookup reads the whole entity. The ``LIMIT 1`` keeps the lateral subquery from being flattened into a join the
planner could turn into the same scan.
"""

_ALLOCATE = text(
    "SELECT nextval(pg_get_serial_sequence('sf_change_log', 'seq')::regclass) FROM generate_series(1, :n)"
)


class RecordsetWriter(BulkWriter):
    """Writes a batch as one ``INSERT ... SELECT FROM json_to_recordset(...)``: one statement, one parameter and one
    round trip per batch. An executemany, even pipelined, pays per row on both ends of the connection, and psycopg
    adapts arrays of text in Python; one JSON document is encoded in C by msgspec and parsed in C by the server.
    Timestamps travel as RFC 3339 text with their offset, booleans as JSON booleans, NULL as null."""

    def __init__(self, table: Table, dialect: Dialect, conflict: str = "") -> None:
        super().__init__(table.insert(), table, dialect)
        columns = ", ".join(_quote(dialect, c.name) for c in table.c)
        shape = ", ".join(f"{_quote(dialect, c.name)} {c.type.compile(dialect=dialect)}" for c in table.c)
        self.sql = (
            f"INSERT INTO {_quote(dialect, table.name)} ({columns}) SELECT {columns} "
            f"FROM json_to_recordset(CAST(%(rows)s AS JSON)) AS r({shape}) {conflict}"
        )

    def execute(self, conn: Connection, rows: list[tuple[Any, ...]], shared: dict[str, Any] | None = None) -> None:
        if shared:
            rows = self._whole_rows(rows, shared)
        names = self.names
        document = _encoder.encode([dict(zip(names, row, strict=True)) for row in rows]).decode("utf-8")
        conn.exec_driver_sql(self.sql, {"rows": document})


_encoder = msgspec.json.Encoder()


def _quote(dialect: Dialect, name: str) -> str:
    return dialect.identifier_preparer.quote(name)


def driver_url(url: str) -> str:
    """The SQLAlchemy URL for the psycopg 3 driver: ``postgres://`` and ``postgresql://`` become
    ``postgresql+psycopg://``; any other driver is refused."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError([f"invalid store URL: {exc}"]) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in ("postgresql", "postgres") or driver not in ("", "psycopg"):
        raise ConfigError([f"{parsed.drivername!r} is not supported; use postgresql://... (psycopg 3)"])
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


class PostgresStore(SqlStore):
    """The canonical store in PostgreSQL.

    Every write transaction first takes ``pg_advisory_xact_lock(WRITE_LOCK_KEY)``, held until it commits or rolls
    back. Change-log sequence numbers come from a PostgreSQL sequence, and a sequence hands out numbers in the order
    transactions *ask*, not the order they *commit*: without the lock, transaction A could take seq 10, B seq 11,
    B commit, an outbound reader see 11 and store checkpoint 11, and then A commit 10, which that reader would never
    read. With the lock, writers run one after another, so sequence order equals commit order and a reader at
    checkpoint N never later sees a smaller sequence commit. (PostgreSQL makes a transaction's rows visible before it
    releases its locks, so the next writer's rows can never become visible first.) The lock also means a writer
    reads the versions it bumps without a race. Writers serialize; readers never wait.

    The lock is per database: stores in different schemas of one database share it, which only serializes them.
    Runs (``start_run``/``finish_run``) commit on their own and do not take it: they do not touch the change log.
    """

    insert = staticmethod(pg_insert)
    _lookup = _LOOKUP

    def __init__(self, url: str) -> None:
        target = driver_url(url)
        try:
            import psycopg
        except ImportError:
            raise ConfigError(["the PostgreSQL store needs psycopg 3: pip install 'syncfabric[postgres]'"]) from None
        self._driver_errors = (psycopg.Error,)
        self._libpq_url = target.replace("postgresql+psycopg://", "postgresql://", 1)
        self._listeners: list[Any] = []
        self._listeners_lock = threading.Lock()
        # pre-ping: a connection that died while idle in the pool (server restart, failover) is replaced, not used.
        super().__init__(url, create_engine(target, pool_pre_ping=True))

    def _bulk_writers(self, dialect: Dialect) -> tuple[BulkWriter, BulkWriter, BulkWriter]:
        key = ", ".join(_quote(dialect, c.name) for c in t.state.primary_key.columns)
        updates = ", ".join(f"{_quote(dialect, name)} = EXCLUDED.{_quote(dialect, name)}" for name in STATE_UPDATES)
        return (
            RecordsetWriter(t.state, dialect, f"ON CONFLICT ({key}) DO UPDATE SET {updates}"),
            RecordsetWriter(t.change_log, dialect),
            RecordsetWriter(t.state, dialect),
        )

    def _begin_write(self, conn: Connection) -> None:
        conn.begin()
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})
        if getattr(self._local, "relaxed", False):
            conn.execute(text("SET LOCAL synchronous_commit = off"))  # ends with the transaction

    def _relax_commit(self, conn: Connection, relaxed: bool) -> None:
        self._local.relaxed = relaxed

    def _allocate_seqs(self, conn: Connection, n: int) -> list[int]:
        seqs = sorted(int(seq) for seq in conn.execute(_ALLOCATE, {"n": n}).scalars())
        conn.execute(text(f"NOTIFY {CHANGE_CHANNEL}"))  # sent to listeners when this transaction commits
        return seqs

    # -- change notifications ---------------------------------------------------------------------------------------

    def wait_for_changes(self, timeout: float, stop: threading.Event | None = None) -> None:
        """Wait for a commit that appended to the change log (``LISTEN sf_change_log``), at most ``timeout``.

        Each thread listens on a connection of its own, opened on first use, so that consumers in several threads
        are all woken. A notification may come from another store in the same database: the caller reads the log
        to see what is new, so a spurious wake-up costs one query."""
        if stop is not None and stop.is_set():
            return
        with self._errors("wait for change-log notifications"):
            listener = getattr(self._local, "listener", None)
            if listener is None or listener.closed:
                import psycopg

                listener = psycopg.connect(self._libpq_url, autocommit=True)
                listener.execute(f"LISTEN {CHANGE_CHANNEL}")
                self._local.listener = listener
                with self._listeners_lock:
                    self._listeners.append(listener)
            for _ in listener.notifies(timeout=timeout, stop_after=1):
                pass

    def close(self) -> None:
        with self._listeners_lock:
            listeners, self._listeners = self._listeners, []
        for listener in listeners:
            with contextlib.suppress(Exception):  # best effort: the server drops the session anyway
                listener.close()
        super().close()
