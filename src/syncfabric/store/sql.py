"""The store on SQLAlchemy Core: one implementation shared by the SQLite and PostgreSQL backends.

A backend differs from another in a few places only, each a hook on :class:`SqlStore`:

- ``insert``: the dialect's INSERT construct (both offer ``ON CONFLICT DO UPDATE``);
- ``_begin_write``: how a write transaction starts. Each backend serializes writers, so that a writer reads the
  versions it bumps without a race and change-log sequence order equals commit order;
- ``_allocate_seqs``: how a writer takes change-log sequence numbers (it holds the write lock when it does);
- ``_driver_errors``: the driver's own exception root, for errors raised outside SQLAlchemy's wrapping;
- ``_lookup``: the query fetching the version, hash and deleted flag of a chunk of keys;
- ``_field_rows``: the query fetching one payload field of a chunk of keys (what ``stored_fields`` answers);
- ``_bulk_writers``: how a batch of state rows (upserted, or inserted as new keys) and of change-log rows is written.

``apply`` is written for batches of thousands of records: one indexed lookup per 500 keys, then one bulk write
of the state rows and one of the change-log rows. Unchanged records write nothing. ``apply_batch`` with ``new`` (a
first load) skips the lookup: it inserts the state rows in a savepoint, which the primary key fails if any key has
a state already, and then applies the batch as ``apply`` does.

Driver errors become :class:`~syncfabric.errors.StoreError` here, once, with the driver's exception as
``__cause__``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from itertools import chain
from pathlib import Path
from typing import Any, ClassVar

import msgspec
from sqlalchemy import Connection, Dialect, Engine, Row, Table, bindparam, case, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql import Executable

from syncfabric.errors import StoreError
from syncfabric.store import tables as t
from syncfabric.store.base import (
    Alert,
    ApplyResult,
    Attempt,
    Change,
    DeadLetter,
    DeadLetterStatus,
    DeliveryBatch,
    DeliveryGroup,
    IncomingRecord,
    Lineage,
    NewDeadLetter,
    NewQuarantine,
    NewQuarantineEvent,
    NewSource,
    Op,
    QuarantineAction,
    QuarantineEntry,
    QuarantineEvent,
    QuarantineStatus,
    RecordBatch,
    RunRecord,
    RunStatus,
    SourceRecord,
    StateRow,
    Store,
    Transaction,
    content_hash,
)

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
KEY_CHUNK = 500
"""Keys per ``IN (...)`` lookup: well under every backend's bound-parameter limit, big enough to be cheap."""
STREAM_ROWS = 1000
VALUES_ROWS = 100
"""Rows of values per statement of a :class:`BulkWriter` on SQLite (well under its bound-parameter limit)."""
NO_LINEAGE = Lineage()
TOMBSTONE_HASH = ""
"""The content hash of a deleted key: it has no content."""
STATE_UPDATES = ("version", "content_hash", "payload", "deleted", "last_seq", "updated_at", "input_hash")
"""The state columns an upsert of an existing key overwrites (its raw record is kept: see :meth:`put_sources`)."""
NO_RAW = (None,) * sum(column.name.startswith("raw") for column in t.state.c)
"""The raw columns of a state row written without its raw record (an upsert leaves a stored one alone)."""
STATE = [t.state.c[name] for name in ("entity", "key", *STATE_UPDATES)]
"""The state columns proper, without the raw record kept alongside."""

LOOKUP = (
    select(t.state.c.key, t.state.c.version, t.state.c.content_hash, t.state.c.deleted, t.state.c.input_hash)
    .where(t.state.c.entity == bindparam("entity"), t.state.c.key.in_(bindparam("keys", expanding=True)))
)


class BulkWriter:
    """Writes many rows of one table: a statement compiled once for the driver and run as a plain executemany.

    On batches of thousands of rows, SQLAlchemy's per-row parameter processing costs more than the database does.
    Rows here are tuples in column order carrying only values the driver takes as they are (str, int, None); a value
    that needs converting (timestamps, booleans) is the same for the whole batch and is converted once with
    :meth:`bind`. A backend may run the rows differently (PostgreSQL: one statement over a JSON document).

    Values the whole batch shares may be given once (``shared``, by column name), the rows then carrying the other
    columns only, in column order. On SQLite they are bound once per statement (numbered parameters that every row
    of values refers to), not once per row: a first load's rows share most of their columns.
    """

    def __init__(self, stmt: Any, table: Table, dialect: Dialect, *, skip: Sequence[str] = ()) -> None:
        columns = [c for c in table.c if c.name not in skip]  # ``skip``: columns the database fills (an id)
        self.names = [c.name for c in columns]
        self._processors = {c.name: c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns}
        compiled = stmt.compile(dialect=dialect, column_keys=self.names)
        if compiled.positional and list(compiled.positiontup or ()) != self.names:
            raise AssertionError(f"unexpected parameter order {compiled.positiontup} for {self.names}")
        self.sql = compiled.string
        self.positional = compiled.positional
        self._many_sql = ""
        """On SQLite, the statement with :data:`VALUES_ROWS` rows of values: the same rows in a fifth to a third
        less of the database's time than one row per execution (each execution binds, steps and resets)."""
        self._group = "(" + ", ".join("?" * len(self.names)) + ")"
        self._numbered = dialect.name == "sqlite" and self.positional and self.sql.count(self._group) == 1
        if self._numbered:
            self._many_sql = self.sql.replace(self._group, ", ".join([self._group] * VALUES_ROWS))
        self._shared_sql: dict[tuple[str, ...], tuple[str, str]] = {}

    def bind(self, name: str, value: Any) -> Any:
        """A value as the driver takes it for column ``name`` (what SQLAlchemy would have sent)."""
        processor = self._processors[name]
        return value if processor is None else processor(value)

    def execute(self, conn: Connection, rows: list[tuple[Any, ...]], shared: dict[str, Any] | None = None) -> None:
        if shared:
            if self._numbered:
                self._execute_shared(conn, rows, shared)
                return
            rows = self._whole_rows(rows, shared)
        if self._many_sql and len(rows) >= VALUES_ROWS:
            whole = len(rows) - len(rows) % VALUES_ROWS
            conn.exec_driver_sql(self._many_sql, [
                tuple(chain.from_iterable(rows[start:start + VALUES_ROWS]))
                for start in range(0, whole, VALUES_ROWS)])
            rows = rows[whole:]
            if not rows:
                return
        if self.positional:
            conn.exec_driver_sql(self.sql, rows)
        else:
            names = self.names
            conn.exec_driver_sql(self.sql, [dict(zip(names, row, strict=True)) for row in rows])

    def _whole_rows(self, rows: list[tuple[Any, ...]], shared: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Rows of every column: the shared values put in their places."""
        self._check_shared(shared)
        own = [name not in shared for name in self.names]
        values = [shared.get(name) for name in self.names]

        def whole(row: tuple[Any, ...]) -> tuple[Any, ...]:
            cells = iter(row)
            return tuple(next(cells) if mine else value for mine, value in zip(own, values, strict=True))

        return [whole(row) for row in rows]

    def _check_shared(self, shared: dict[str, Any]) -> None:
        unknown = set(shared) - set(self.names)
        if unknown:
            raise AssertionError(f"shared values of unknown columns {sorted(unknown)}")

    def _execute_shared(self, conn: Connection, rows: list[tuple[Any, ...]], shared: dict[str, Any]) -> None:
        names = tuple(shared)
        statements = self._shared_sql.get(names)
        if statements is None:
            self._check_shared(shared)
            own = [name for name in self.names if name not in shared]

            def group(row: int) -> str:
                first = len(names) + 1 + row * len(own)
                numbers = {name: first + at for at, name in enumerate(own)}
                numbers.update((name, at + 1) for at, name in enumerate(names))
                return "(" + ", ".join(f"?{numbers[name]}" for name in self.names) + ")"

            statements = self._shared_sql[names] = (
                self.sql.replace(self._group, ", ".join(group(row) for row in range(VALUES_ROWS))),
                self.sql.replace(self._group, group(0)))
        many_sql, one_sql = statements
        values = tuple(shared.values())
        whole = len(rows) - len(rows) % VALUES_ROWS
        if whole:
            conn.exec_driver_sql(many_sql, [
                values + tuple(chain.from_iterable(rows[start:start + VALUES_ROWS]))
                for start in range(0, whole, VALUES_ROWS)])
        if whole < len(rows):
            conn.exec_driver_sql(one_sql, [values + row for row in rows[whole:]])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 1000 else text[:1000] + " ..."


class SqlStore(Store):
    """The canonical store on a SQL database. Subclasses make the engine and fill in the backend hooks."""

    insert: ClassVar[Callable[..., Any]]
    _driver_errors: tuple[type[BaseException], ...] = ()
    _lookup: ClassVar[Executable] = LOOKUP
    """Parameters ``entity`` and ``keys`` (a list); rows of (key, version, content_hash, deleted, input_hash)."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self._engine = engine
        self._local = threading.local()
        self._closed = False
        self._bulk_state, self._bulk_log, self._bulk_new_state = self._bulk_writers(engine.dialect)
        compiled = _SOURCE_UPDATE.compile(dialect=engine.dialect)
        self._source_update = (compiled.string, list(compiled.positiontup or ()) if compiled.positional else None)
        """The driver's statement keeping raw records (a net change keeps thousands) and, if positional, the order
        of its parameters."""
        compiled = _NEW_STATE_FROM_LOG.compile(dialect=engine.dialect)
        self._new_state_from_log = (
            compiled.string, list(compiled.positiontup or ()) if compiled.positional else None)
        """The driver's statement inserting the state rows of new keys from their change-log entries just written
        and, if positional, the order of its parameters (see :meth:`SqlTransaction.insert_new`)."""
        self._delivery_writer: BulkWriter | None = None
        excluded = self.insert(t.checkpoint).excluded
        self._checkpoint_upsert = self.insert(t.checkpoint).on_conflict_do_update(
            index_elements=[t.checkpoint.c.name],
            set_={"value": excluded.value, "updated_at": excluded.updated_at},
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._engine.url.render_as_string(hide_password=True)!r})"

    # -- backend hooks ---------------------------------------------------------------------------------------------

    def _begin_write(self, conn: Connection) -> None:
        """Begin the write transaction on ``conn``, holding the store-wide write lock when this returns."""
        raise NotImplementedError

    def _relax_commit(self, conn: Connection, relaxed: bool) -> None:
        """Before the transaction begins (``relaxed``) and after it ended: let its commit return before it reached
        the disk, then restore the connection's setting (see :meth:`Store.transaction`). Default: always durable."""

    def _allocate_seqs(self, conn: Connection, n: int) -> list[int]:
        """``n`` new change-log sequence numbers, ascending, above every committed one. Called with the write lock."""
        raise NotImplementedError

    def _bulk_writers(self, dialect: Dialect) -> tuple[BulkWriter, BulkWriter, BulkWriter]:
        """Writers of state rows (an upsert on the key), of change-log rows (an insert) and of state rows of new keys
        (a plain insert, failing on a key that has a state)."""
        excluded = self.insert(t.state).excluded
        state_upsert = self.insert(t.state).on_conflict_do_update(
            index_elements=[t.state.c.entity, t.state.c.key],
            set_={name: excluded[name] for name in STATE_UPDATES},
        )
        return (BulkWriter(state_upsert, t.state, dialect), BulkWriter(t.change_log.insert(), t.change_log, dialect),
                BulkWriter(t.state.insert(), t.state, dialect))

    def _lookup_rows(self, conn: Connection, entity: str, keys: Sequence[str]) -> Iterable[Sequence[Any]]:
        """(key, version, content_hash, deleted, input_hash) of those of at most KEY_CHUNK ``keys`` that exist."""
        return conn.execute(self._lookup, {"entity": entity, "keys": list(keys)})

    def _field_rows(self, conn: Connection, entity: str, keys: Sequence[str], name: str | None
                    ) -> Iterable[Sequence[Any]]:
        """(key, value of field ``name`` in the payload or None) of those of at most KEY_CHUNK ``keys`` that have a
        state, deleted ones included."""
        state = t.state.c
        rows = conn.execute(select(state.key, state.payload).where(
            state.entity == entity, state.key.in_(list(keys))))
        return [(key, msgspec.json.decode(payload).get(name) if name and payload is not None else None)
                for key, payload in rows]

    def _write_checkpoint(self, conn: Connection, name: str, value: str) -> None:
        """Upsert one checkpoint inside a write transaction."""
        conn.execute(self._checkpoint_upsert, {"name": name, "value": value, "updated_at": _now()})

    def _logged(
        self, entity: str, op: Op, recorded_at: dt.datetime, seqs: Sequence[int], entries: LoggedEntries
    ) -> None:
        """What a write transaction appended to the change log, just written (not yet committed): the entries of
        ``seqs``, or how to make them. A backend may keep them for readers of its own process once committed
        (SQLite does, see :mod:`syncfabric.store.sqlite`)."""

    # -- plumbing ---------------------------------------------------------------------------------------------------

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Translate driver errors into StoreError, keeping the driver's exception as the cause."""
        catch: tuple[type[BaseException], ...] = (SQLAlchemyError, *self._driver_errors)
        try:
            yield
        except catch as exc:
            orig = getattr(exc, "orig", None)
            cause = orig if isinstance(orig, BaseException) else exc
            raise StoreError(f"{action}: {_describe(cause)}") from cause

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self!r} is closed")

    def _check_not_writing(self, action: str) -> None:
        if getattr(self._local, "writing", False):
            raise StoreError(
                f"{action} inside an open write transaction of the same thread: it would wait for that "
                "transaction's own lock; do it before or after the transaction"
            )

    @contextmanager
    def _writing(self, action: str, *, durable: bool = True) -> Iterator[Connection]:
        """A connection inside a write transaction holding the write lock; commits at the end, rolls back on error.
        ``durable=False``: see :meth:`Store.transaction`."""
        self._check_open()
        self._check_not_writing(action)
        self._local.writing = True
        try:
            with self._errors(action):
                conn = self._engine.connect()
            try:
                with self._errors(action):
                    if not durable:
                        self._relax_commit(conn, True)
                    self._begin_write(conn)
                try:
                    yield conn
                except BaseException:
                    try:
                        conn.rollback()
                    except Exception:  # the original error matters more; closing the connection discards it anyway
                        log.warning("rollback failed after an error in %s", action, exc_info=True)
                    raise
                with self._errors(f"{action}: commit"):
                    conn.commit()
            finally:
                if not durable:
                    try:
                        self._relax_commit(conn, False)
                    except Exception:  # never hand a relaxed connection back to the pool
                        conn.invalidate()
                conn.close()
        finally:
            self._local.writing = False

    @contextmanager
    def _autonomous(self, action: str) -> Iterator[Connection]:
        """A short transaction of its own that commits at once (runs), without the change-log write lock."""
        self._check_open()
        self._check_not_writing(action)
        with self._errors(action), self._engine.begin() as conn:
            yield conn

    @contextmanager
    def _reading(self, action: str) -> Iterator[Connection]:
        self._check_open()
        with self._errors(action), self._engine.connect() as conn:
            yield conn

    # -- Store ------------------------------------------------------------------------------------------------------

    def migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        from alembic.util import CommandError

        with self._writing("migrate the store schema") as conn:
            config.attributes["connection"] = conn
            try:
                with self._errors("migrate the store schema"):
                    command.upgrade(config, "head")
            except CommandError as exc:  # e.g. a schema revision newer than this release knows
                raise StoreError(f"migrate the store schema: {exc}") from exc

    def transaction(self, *, durable: bool = True) -> AbstractContextManager[Transaction]:
        return self._transaction(durable)

    @contextmanager
    def _transaction(self, durable: bool = True) -> Iterator[Transaction]:
        with self._writing("write transaction", durable=durable) as conn:
            tx = SqlTransaction(self, conn)
            try:
                yield tx
            finally:
                tx._conn = None

    def get(self, entity: str, key: str) -> StateRow | None:
        with self._reading(f"get {entity} {key!r}") as conn:
            row = conn.execute(
                select(*STATE).where(t.state.c.entity == entity, t.state.c.key == key)
            ).one_or_none()
        return None if row is None else _state_row(row)

    def get_many(self, entity: str, keys: Sequence[str]) -> dict[str, StateRow]:
        unique = list(dict.fromkeys(keys))
        found: dict[str, StateRow] = {}
        if not unique:
            return found
        with self._reading(f"get many {entity}") as conn:
            found.update(_live_rows(conn, entity, unique))
        return found

    def current(self, entity: str, *, include_deleted: bool = False) -> Iterator[StateRow]:
        stmt = select(*STATE).where(t.state.c.entity == entity).order_by(t.state.c.key)
        if not include_deleted:
            stmt = stmt.where(t.state.c.deleted.is_(False))
        with self._reading(f"read current {entity}") as conn:
            # One read transaction for the whole walk: a consistent snapshot, streamed in chunks.
            for row in conn.execution_options(yield_per=STREAM_ROWS).execute(stmt):
                yield _state_row(row)

    def changes(self, after: int, *, entities: Sequence[str] | None = None, limit: int = 1000) -> list[Change]:
        if limit <= 0 or (entities is not None and not entities):
            return []
        stmt = select(t.change_log).where(t.change_log.c.seq > after).order_by(t.change_log.c.seq).limit(limit)
        if entities is not None:
            stmt = stmt.where(t.change_log.c.entity.in_(list(entities)))
        with self._reading(f"read changes after {after}") as conn:
            return [_change(row) for row in conn.execute(stmt)]

    def head(self) -> int:
        with self._reading("read the change-log head") as conn:
            return int(conn.execute(select(func.coalesce(func.max(t.change_log.c.seq), 0))).scalar_one())

    def checkpoint(self, name: str) -> str | None:
        with self._reading(f"read checkpoint {name!r}") as conn:
            value: str | None = conn.execute(
                select(t.checkpoint.c.value).where(t.checkpoint.c.name == name)
            ).scalar_one_or_none()
        return value

    def count(self, entity: str) -> int:
        stmt = select(func.count()).select_from(t.state).where(
            t.state.c.entity == entity, t.state.c.deleted.is_(False)
        )
        with self._reading(f"count {entity}") as conn:
            return int(conn.execute(stmt).scalar_one())

    def xref(self, system: str, entity: str, external_id: str) -> str | None:
        with self._reading(f"read xref {system}/{entity}") as conn:
            return _xref_key(conn, system, entity, external_id)

    def xref_external(self, system: str, entity: str, key: str) -> str | None:
        with self._reading(f"read xref {system}/{entity}") as conn:
            return _xref_external(conn, system, entity, key)

    def xref_externals(self, system: str, entity: str, keys: Sequence[str]) -> dict[str, str]:
        x = t.xref
        wanted = sorted(set(keys))
        found: dict[str, str] = {}
        with self._reading(f"read xref {system}/{entity}") as conn:
            for start in range(0, len(wanted), KEY_CHUNK):
                rows = conn.execute(select(x.c.canonical_key, x.c.external_id).where(
                    x.c.system == system, x.c.entity == entity, x.c.canonical_key.in_(wanted[start:start + KEY_CHUNK])))
                found.update((key, external_id) for key, external_id in rows)
        return found

    def quarantine(
        self,
        *,
        status: QuarantineStatus | None = QuarantineStatus.OPEN,
        flow: str | None = None,
        system: str | None = None,
        reason: str | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[QuarantineEntry]:
        q = t.quarantine
        stmt = select(q).order_by(q.c.id)
        if status is not None:
            stmt = stmt.where(q.c.status == QuarantineStatus(status).value)
        if flow is not None:
            stmt = stmt.where(q.c.flow == flow)
        if system is not None:
            stmt = stmt.where(q.c.system == system)
        if reason:
            # Coarse filter in SQL on the JSON text, exact substring match per reason below.
            stmt = stmt.where(q.c.reasons.contains(_json(reason)[1:-1], autoescape=True))
        if ids is not None:
            if not ids:
                return []
            stmt = stmt.where(q.c.id.in_(list(ids)))
        with self._reading("read quarantine") as conn:
            entries = [_quarantine_entry(row) for row in conn.execute(stmt)]
        if reason:
            entries = [e for e in entries if any(reason in r for r in e.reasons)]
        return entries

    def quarantine_events(self, entry_id: int) -> list[QuarantineEvent]:
        e = t.quarantine_event
        stmt = select(e).where(e.c.entry_id == entry_id).order_by(e.c.id)
        with self._reading(f"read the history of quarantine entry {entry_id}") as conn:
            return [
                QuarantineEvent(id=row.id, entry_id=row.entry_id, action=QuarantineAction(row.action),
                                detail=row.detail, actor=row.actor, recorded_at=row.recorded_at)
                for row in conn.execute(stmt)
            ]

    def quarantine_counts(self) -> dict[str, int]:
        q = t.quarantine
        stmt = (
            select(q.c.flow, func.count())
            .where(q.c.status == QuarantineStatus.OPEN.value)
            .group_by(q.c.flow)
            .order_by(q.c.flow)
        )
        with self._reading("count quarantine") as conn:
            return {flow: int(n) for flow, n in conn.execute(stmt)}

    def start_run(self, flow: str) -> int:
        with self._autonomous(f"start a run of {flow}") as conn:
            run_id = conn.execute(
                t.run.insert().returning(t.run.c.id),
                {
                    "flow": flow, "started_at": _now(), "finished_at": None, "status": RunStatus.RUNNING.value,
                    "records_in": 0, "records_out": 0, "unchanged": 0, "quarantined": 0, "detail": "{}",
                },
            ).scalar_one()
        return int(run_id)

    def finish_run(
        self,
        run_id: int,
        status: RunStatus,
        *,
        records_in: int = 0,
        records_out: int = 0,
        unchanged: int = 0,
        quarantined: int = 0,
        detail: dict[str, object] | None = None,
    ) -> None:
        try:
            detail_text = _json(detail or {})
        except (TypeError, msgspec.EncodeError) as exc:
            raise StoreError(f"finish run {run_id}: detail is not JSON-serializable: {exc}") from exc
        with self._autonomous(f"finish run {run_id}") as conn:
            done = conn.execute(
                t.run.update().where(t.run.c.id == run_id).values(
                    finished_at=_now(), status=RunStatus(status).value, records_in=records_in,
                    records_out=records_out, unchanged=unchanged, quarantined=quarantined, detail=detail_text,
                )
            )
            if done.rowcount != 1:
                raise StoreError(f"finish run {run_id}: no such run")

    def runs(self, flow: str | None = None, limit: int = 20) -> list[RunRecord]:
        stmt = select(t.run).order_by(t.run.c.id.desc()).limit(max(limit, 0))
        if flow is not None:
            stmt = stmt.where(t.run.c.flow == flow)
        with self._reading("read runs") as conn:
            return [_run_record(row) for row in conn.execute(stmt)]

    def history(self, entity: str, key: str) -> list[Change]:
        c = t.change_log
        stmt = select(c).where(c.c.entity == entity, c.c.key == key).order_by(c.c.seq)
        with self._reading(f"read the history of {entity} {key!r}") as conn:
            return [_change(row) for row in conn.execute(stmt)]

    def sources(self, entity: str, *, flow: str | None = None, keys: Sequence[str] | None = None
                ) -> Iterator[SourceRecord]:
        st, c = t.state, t.change_log
        stmt = (
            select(st.c.key, st.c.raw_flow, st.c.raw_source_id, st.c.raw, st.c.payload, st.c.version,
                   c.c.mapping_version)
            .select_from(st)
            .outerjoin(c, c.c.seq == st.c.last_seq)
            .where(st.c.entity == entity, st.c.deleted.is_(False), st.c.raw.is_not(None))
            .order_by(st.c.key)
        )
        if flow is not None:
            stmt = stmt.where(st.c.raw_flow == flow)
        wanted = sorted(set(keys)) if keys is not None else None
        chunks = [stmt] if wanted is None else [stmt.where(st.c.key.in_(wanted[start:start + KEY_CHUNK]))
                                                for start in range(0, len(wanted), KEY_CHUNK)]
        with self._reading(f"read the source records of {entity}") as conn:
            for chunk in chunks:  # key ranges in key order, so the whole is ordered by key too
                for row in conn.execution_options(yield_per=STREAM_ROWS).execute(chunk):
                    yield SourceRecord(entity=entity, key=row.key, flow=row.raw_flow, source_id=row.raw_source_id,
                                       raw=row.raw, payload=row.payload.encode("utf-8"), version=row.version,
                                       mapping_version=row.mapping_version or "")

    # -- dead letters and alerts ------------------------------------------------------------------------------------

    def dead_letters(
        self,
        *,
        status: DeadLetterStatus | None = DeadLetterStatus.OPEN,
        flow: str | None = None,
        entity: str | None = None,
        key: str | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[DeadLetter]:
        d = t.dead_letter
        stmt = select(d).order_by(d.c.id)
        if status is not None:
            stmt = stmt.where(d.c.status == DeadLetterStatus(status).value)
        for column, value in ((d.c.flow, flow), (d.c.entity, entity), (d.c.record_key, key)):
            if value is not None:
                stmt = stmt.where(column == value)
        if ids is not None:
            if not ids:
                return []
            stmt = stmt.where(d.c.id.in_(list(ids)))
        with self._reading("read dead letters") as conn:
            return [_dead_letter(row) for row in conn.execute(stmt)]

    def held_keys(self, flow: str) -> dict[tuple[str, str], int]:
        d = t.dead_letter
        stmt = (
            select(d.c.entity, d.c.record_key, func.min(d.c.id))
            .where(d.c.flow == flow, d.c.status == DeadLetterStatus.OPEN.value)
            .group_by(d.c.entity, d.c.record_key)
        )
        with self._reading(f"read the keys {flow} holds") as conn:
            return {(entity, key): int(first) for entity, key, first in conn.execute(stmt)}

    def dead_letter_counts(self) -> dict[str, int]:
        d = t.dead_letter
        stmt = (select(d.c.flow, func.count()).where(d.c.status == DeadLetterStatus.OPEN.value)
                .group_by(d.c.flow).order_by(d.c.flow))
        with self._reading("count dead letters") as conn:
            return {flow: int(n) for flow, n in conn.execute(stmt)}

    def raise_alert(self, flow: str, kind: str, message: str, detail: dict[str, object] | None = None) -> int:
        try:
            detail_text = _json(detail or {})
        except (TypeError, msgspec.EncodeError) as exc:
            raise StoreError(f"raise alert for {flow}: detail is not JSON-serializable: {exc}") from exc
        with self._autonomous(f"raise an alert for {flow}") as conn:
            alert_id = conn.execute(t.alert.insert().returning(t.alert.c.id), {
                "flow": flow, "kind": kind, "message": message, "detail": detail_text, "raised_at": _now(),
            }).scalar_one()
        return int(alert_id)

    def alerts(self, flow: str | None = None, limit: int = 20) -> list[Alert]:
        stmt = select(t.alert).order_by(t.alert.c.id.desc()).limit(max(limit, 0))
        if flow is not None:
            stmt = stmt.where(t.alert.c.flow == flow)
        with self._reading("read alerts") as conn:
            return [Alert(id=row.id, flow=row.flow, kind=row.kind, message=row.message,
                          detail=msgspec.json.decode(row.detail, type=dict[str, object]), raised_at=row.raised_at)
                    for row in conn.execute(stmt)]

    # -- the delivery log ----------------------------------------------------------------------------------------------

    def delivery_groups(self, *, flow: str | None = None, entity: str | None = None) -> list[DeliveryGroup]:
        d = t.delivery
        stmt = (select(d.c.flow, d.c.system, d.c.entity, d.c.grp, func.sum(d.c.records),
                       func.max(d.c.newest_source_time), func.max(d.c.confirmed_at))
                .group_by(d.c.flow, d.c.system, d.c.entity, d.c.grp).order_by(d.c.flow, d.c.entity, d.c.grp))
        for column, value in ((d.c.flow, flow), (d.c.entity, entity)):
            if value is not None:
                stmt = stmt.where(column == value)
        with self._reading("read the delivery log") as conn:
            return [DeliveryGroup(flow=row[0], system=row[1], entity=row[2], group=row[3], records=int(row[4]),
                                  newest_source_time=as_utc(row[5]), last_confirmed_at=as_utc(row[6]))
                    for row in conn.execute(stmt)]

    def deliveries(self, *, since: dt.datetime, until: dt.datetime | None = None, flow: str | None = None,
                   entity: str | None = None) -> list[DeliveryBatch]:
        d = t.delivery
        stmt = select(d).where(d.c.confirmed_at >= since).order_by(d.c.confirmed_at, d.c.id)
        if until is not None:
            stmt = stmt.where(d.c.confirmed_at <= until)
        for column, value in ((d.c.flow, flow), (d.c.entity, entity)):
            if value is not None:
                stmt = stmt.where(column == value)
        with self._reading("read the delivery log") as conn:
            return [DeliveryBatch(flow=row.flow, system=row.system, entity=row.entity, group=row.grp,
                                  records=row.records, first_seq=row.first_seq, last_seq=row.last_seq,
                                  newest_source_time=row.newest_source_time, confirmed_at=row.confirmed_at,
                                  latency=_decode_latency(row.latency), latency_sum=row.latency_sum,
                                  latency_max=row.latency_max, newest_changed_at=row.newest_changed_at,
                                  changes=tuple((_EPOCH + micros * _MICROSECOND, keys)
                                                for micros, keys in _decode_changes(row.changes)))
                    for row in conn.execute(stmt)]

    def prune_deliveries(self, before: dt.datetime) -> int:
        d = t.delivery
        newest = (select(d.c.flow, d.c.entity, d.c.grp, func.max(d.c.newest_source_time).label("newest"))
                  .group_by(d.c.flow, d.c.entity, d.c.grp).subquery())
        keep = (select(func.max(d.c.id)).join(newest, (newest.c.flow == d.c.flow) & (newest.c.entity == d.c.entity)
                                              & (newest.c.grp == d.c.grp)
                                              & (newest.c.newest == d.c.newest_source_time))
                .group_by(d.c.flow, d.c.entity, d.c.grp))
        with self._autonomous("prune the delivery log") as conn:
            kept = [row[0] for row in conn.execute(keep)]
            done = conn.execute(d.delete().where(d.c.confirmed_at < before, d.c.id.not_in(kept)))
        return int(done.rowcount or 0)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    # -- consistent snapshots and leases ---------------------------------------------------------------------------

    def current_as_of(self, entity: str, seq: int, *, include_deleted: bool = False,
                      after_key: str | None = None) -> Iterator[StateRow]:
        s, c = t.state, t.change_log
        newer = select(s.c.key).where(s.c.entity == entity, s.c.last_seq > seq)
        older = (select(c).where(c.c.entity == entity, c.c.seq <= seq, c.c.key.in_(bindparam("keys", expanding=True)))
                 .order_by(c.c.key, c.c.seq))
        stmt = select(*STATE).where(s.c.entity == entity).order_by(s.c.key)
        if after_key is not None:
            newer, stmt = newer.where(s.c.key > after_key), stmt.where(s.c.key > after_key)

        def as_of(conn: Connection, keys: list[str]) -> dict[str, StateRow]:
            """The state after ``seq`` of keys changed since: their last change up to ``seq``, if any."""
            found: dict[str, StateRow] = {}
            for start in range(0, len(keys), KEY_CHUNK):
                for row in conn.execute(older, {"keys": keys[start:start + KEY_CHUNK]}):
                    found[row.key] = StateRow(
                        entity=entity, key=row.key, version=row.version, content_hash=row.content_hash,
                        payload=_bytes(row.payload), deleted=row.op == Op.DELETE.value, last_seq=row.seq,
                        updated_at=row.recorded_at)
            return found

        with self._reading(f"read {entity} as of {seq}") as conn:
            # Keys changed after ``seq`` are looked up in the (immutable) change log; one changed between this
            # query and the walk below (a backend whose statements see newer commits) is looked up on the way.
            changed = list(conn.execute(newer).scalars())
            before, known = as_of(conn, changed), set(changed)
            for row in conn.execution_options(yield_per=STREAM_ROWS).execute(stmt):
                if row.last_seq <= seq:
                    state: StateRow | None = _state_row(row)
                elif row.key in known:
                    state = before.get(row.key)  # None: the key did not exist yet
                else:
                    state = as_of(conn, [row.key]).get(row.key)
                if state is not None and (include_deleted or not state.deleted):
                    yield state

    def live_inputs(self, entity: str) -> dict[str, str | None]:
        s = t.state
        stmt = select(s.c.key, s.c.input_hash).where(s.c.entity == entity, s.c.deleted.is_(False))
        with self._reading(f"read the input hashes of {entity}") as conn:
            return {key: digest for key, digest in conn.execute(stmt)}

    def live_keys(self, entity: str) -> Iterator[str]:
        stmt = select(t.state.c.key).where(t.state.c.entity == entity, t.state.c.deleted.is_(False))
        with self._reading(f"list the keys of {entity}") as conn:
            yield from conn.execution_options(yield_per=STREAM_ROWS * 20).execute(stmt).scalars()

    def acquire_lease(self, name: str, holder: str, seconds: float, *, replacing: str | None = None) -> bool:
        lease = t.lease
        now = _now()
        values = {"name": name, "holder": holder, "acquired_at": now, "expires_at": now + dt.timedelta(seconds=seconds)}
        insert = self.insert(lease).values(**values)
        stmt = insert.on_conflict_do_update(
            index_elements=[lease.c.name],
            set_={"holder": insert.excluded.holder, "acquired_at": insert.excluded.acquired_at,
                  "expires_at": insert.excluded.expires_at},
            where=(lease.c.expires_at < now) | lease.c.holder.in_([holder, replacing or holder]),
        )
        with self._autonomous(f"acquire lease {name!r}") as conn:
            conn.execute(stmt)
            current = conn.execute(select(lease.c.holder).where(lease.c.name == name)).scalar_one()
        return bool(current == holder)

    def lease_holder(self, name: str) -> str | None:
        lease = t.lease
        with self._reading(f"read lease {name!r}") as conn:
            holder: str | None = conn.execute(
                select(lease.c.holder).where(lease.c.name == name, lease.c.expires_at >= _now())
            ).scalar_one_or_none()
        return holder

    def release_lease(self, name: str, holder: str) -> None:
        lease = t.lease
        with self._autonomous(f"release lease {name!r}") as conn:
            conn.execute(lease.delete().where(lease.c.name == name, lease.c.holder == holder))

    def leases(self, prefix: str = "") -> dict[str, str]:
        lease = t.lease
        stmt = select(lease.c.name, lease.c.holder).where(lease.c.expires_at > _now()).order_by(lease.c.name)
        if prefix:
            stmt = stmt.where(lease.c.name.startswith(prefix, autoescape=True))
        with self._reading("read leases") as conn:
            return {name: holder for name, holder in conn.execute(stmt)}


_Existing = tuple[int, str, bool, str | None]
"""A stored key's version, content hash and deleted flag (a plain tuple: thousands are built per page)."""
_VERSION, _HASH, _DELETED, _INPUT = 0, 1, 2, 3
_TOUCH_INPUT = t.state.update().where(t.state.c.entity == bindparam("e"), t.state.c.key == bindparam("k")).values(
    input_hash=bindparam("h"))
LoggedEntry = tuple[int, str, int, str, bytes | None, Lineage]
"""A change-log entry as written: seq, key, version, content hash, payload, lineage."""
LoggedEntries = list[LoggedEntry] | Callable[[], list[LoggedEntry]]


_LIVE_ROWS = select(*STATE).where(
    t.state.c.entity == bindparam("entity"), t.state.c.deleted.is_(False),
    t.state.c.key.in_(bindparam("keys", expanding=True)),
)


def _live_rows(conn: Connection, entity: str, keys: Sequence[str]) -> Iterator[tuple[str, StateRow]]:
    for start in range(0, len(keys), KEY_CHUNK):
        for row in conn.execute(_LIVE_ROWS, {"entity": entity, "keys": list(keys[start:start + KEY_CHUNK])}):
            yield row.key, _state_row(row)


class SqlTransaction(Transaction):
    """Writes on one connection inside one database transaction, holding the store's write lock."""

    def __init__(self, store: SqlStore, conn: Connection) -> None:
        self._store = store
        self._conn: Connection | None = conn

    def _live(self) -> Connection:
        if self._conn is None:
            raise StoreError("the transaction is over; open a new one with store.transaction()")
        return self._conn

    def _existing(self, conn: Connection, entity: str, keys: Sequence[str]) -> dict[str, _Existing]:
        """The current version, hash and deleted flag of those ``keys`` that exist, one query per chunk of keys."""
        found: dict[str, _Existing] = {}
        for start in range(0, len(keys), KEY_CHUNK):
            for key, version, digest, deleted, inputs in self._store._lookup_rows(
                    conn, entity, keys[start:start + KEY_CHUNK]):
                found[key] = (version, digest, bool(deleted), inputs)
        return found

    def apply(self, entity: str, records: Sequence[IncomingRecord]) -> ApplyResult:
        conn = self._live()
        result = ApplyResult()
        if not records:
            return result
        keys = [record.key for record in records]
        if len(set(keys)) != len(keys):
            twice = sorted(k for k, n in Counter(keys).items() if n > 1)
            raise StoreError(f"apply {entity}: keys must be unique within one call; repeated: {twice[:10]}")
        with self._store._errors(f"apply {entity}"):
            existing = self._existing(conn, entity, keys)
        changed: list[tuple[IncomingRecord, int, str, str]] = []
        touched: list[dict[str, Any]] = []  # unchanged records bringing an input hash other than the one kept
        for record in records:
            digest = record.payload_hash or content_hash(record.payload)
            old = existing.get(record.key)
            if old is None:
                version = 1
                result.inserted += 1
            elif old[_DELETED] or old[_HASH] != digest:
                version = old[_VERSION] + 1
                result.updated += 1
            else:
                result.unchanged += 1
                if record.input_hash is not None and old[_INPUT] != record.input_hash:
                    touched.append({"h": record.input_hash, "e": entity, "k": record.key})
                continue
            try:
                text = record.payload.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise StoreError(f"apply {entity}: payload of key {record.key!r} is not UTF-8 JSON: {exc}") from exc
            changed.append((record, version, digest, text))
        if touched:
            with self._store._errors(f"apply {entity}"):
                conn.execute(_TOUCH_INPUT, touched)
        if not changed:
            return result
        store = self._store
        now = _now()
        now_state = store._bulk_state.bind("updated_at", now)
        now_log = store._bulk_log.bind("recorded_at", now)
        live = store._bulk_state.bind("deleted", False)
        upsert = Op.UPSERT.value
        with store._errors(f"apply {entity}"):
            seqs = store._allocate_seqs(conn, len(changed))
            store._bulk_state.execute(conn, [
                (entity, record.key, version, digest, text, live, seq, now_state, record.input_hash, *NO_RAW)
                for (record, version, digest, text), seq in zip(changed, seqs, strict=True)
            ])
            store._bulk_log.execute(conn, [
                (seq, entity, record.key, version, upsert, digest, text, now_log, record.lineage.source_system,
                 record.lineage.source_id, record.lineage.batch_id, record.lineage.mapping_version)
                for (record, version, digest, text), seq in zip(changed, seqs, strict=True)
            ])
            store._logged(entity, Op.UPSERT, now, seqs, [
                (seq, record.key, version, digest, record.payload, record.lineage)
                for (record, version, digest, _), seq in zip(changed, seqs, strict=True)
            ])
        result.last_seq = seqs[-1]
        result.changed_keys = [record.key for record, _, _, _ in changed]
        return result

    def get_many(self, entity: str, keys: Sequence[str]) -> dict[str, StateRow]:
        conn = self._live()
        with self._store._errors(f"get many {entity}"):
            return dict(_live_rows(conn, entity, list(dict.fromkeys(keys))))

    def stored_fields(self, entity: str, keys: Sequence[str], name: str | None) -> dict[str, Any]:
        conn = self._live()
        found: dict[str, Any] = {}
        with self._store._errors(f"look up {entity}"):
            for start in range(0, len(keys), KEY_CHUNK):
                found.update(self._store._field_rows(conn, entity, keys[start:start + KEY_CHUNK], name))
        return found

    def apply_batch(self, entity: str, batch: RecordBatch, *, new: bool = False) -> ApplyResult:
        if new and batch.keys:
            inserted = self.insert_new(entity, batch)
            if inserted is not None:
                return inserted
        return super().apply_batch(entity, batch)

    def insert_new(self, entity: str, batch: RecordBatch) -> ApplyResult | None:
        """The records inserted with their change-log entries and raw records; whether a key has a state already
        the database's primary key says (no key is looked up: the insert fails, and is rolled back to a savepoint).
        Rows are made by zipping the batch's columns, not one object per record."""
        if not batch.keys:
            return ApplyResult()
        conn = self._live()
        store = self._store
        keys, payloads, hashes, where = batch.keys, batch.payloads, batch.hashes, batch.source_ids
        n = len(keys)
        if len(set(keys)) != n:
            return None  # apply reports the repeated keys

        now = _now()
        system, batch_id, version = batch.source_system, batch.batch_id, batch.mapping_version
        state, log = store._bulk_new_state, store._bulk_log
        shared_state = {"entity": entity, "version": 1, "deleted": state.bind("deleted", False),
                        "updated_at": state.bind("updated_at", now)}
        if batch.raws is not None:
            shared_state["raw_flow"] = batch.flow
            raw_columns: tuple[Sequence[Any], ...] = (where, batch.raws)
        else:
            shared_state.update({"raw_flow": None, "raw_source_id": None, "raw": None})
            raw_columns = ()
        shared_log = {"entity": entity, "version": 1, "op": Op.UPSERT.value,
                      "recorded_at": log.bind("recorded_at", now), "source_system": system, "batch_id": batch_id,
                      "mapping_version": version}
        from_log = not raw_columns and not any(batch.input_hashes)
        with store._errors(f"apply {entity}"):
            savepoint = conn.begin_nested()
            try:
                seqs = store._allocate_seqs(conn, n)
                if from_log:  # the change log first, the state rows copied from it: one statement, no rows built
                    log.execute(conn, list(zip(seqs, keys, hashes, payloads, where, strict=True)), shared_log)
                    sql, order = store._new_state_from_log
                    params = {"deleted": shared_state["deleted"], "updated_at": shared_state["updated_at"],
                              "first": seqs[0], "last": seqs[-1]}
                    conn.exec_driver_sql(sql, params if order is None else tuple(params[name] for name in order))
                else:
                    state.execute(conn, list(zip(keys, hashes, payloads, seqs, batch.input_hashes, *raw_columns,
                                                 strict=True)), shared_state)
            except IntegrityError:
                savepoint.rollback()
                return None
            savepoint.commit()
            if not from_log:
                log.execute(conn, list(zip(seqs, keys, hashes, payloads, where, strict=True)), shared_log)

        def entries() -> list[LoggedEntry]:
            return [(seq, key, 1, digest, payload.encode(), Lineage(system, source_id, batch_id, version))
                    for seq, key, digest, payload, source_id in zip(seqs, keys, hashes, payloads, where, strict=True)]

        store._logged(entity, Op.UPSERT, now, seqs, entries)
        return ApplyResult(inserted=n, last_seq=seqs[-1], changed_keys=list(keys))

    def delete(self, entity: str, keys: Sequence[str], lineage: Lineage = NO_LINEAGE) -> ApplyResult:
        conn = self._live()
        result = ApplyResult()
        unique = list(dict.fromkeys(keys))
        if not unique:
            return result
        with self._store._errors(f"delete {entity}"):
            existing = self._existing(conn, entity, unique)
            live = [(key, existing[key][_VERSION] + 1) for key in unique
                    if key in existing and not existing[key][_DELETED]]
            if not live:
                return result
            store = self._store
            now = _now()
            now_state = store._bulk_state.bind("updated_at", now)
            now_log = store._bulk_log.bind("recorded_at", now)
            dead = store._bulk_state.bind("deleted", True)
            seqs = store._allocate_seqs(conn, len(live))
            store._bulk_state.execute(conn, [
                (entity, key, version, TOMBSTONE_HASH, None, dead, seq, now_state, None, *NO_RAW)
                for (key, version), seq in zip(live, seqs, strict=True)
            ])
            store._bulk_log.execute(conn, [
                (seq, entity, key, version, Op.DELETE.value, TOMBSTONE_HASH, None, now_log, lineage.source_system,
                 lineage.source_id, lineage.batch_id, lineage.mapping_version)
                for (key, version), seq in zip(live, seqs, strict=True)
            ])
            store._logged(entity, Op.DELETE, now, seqs, [
                (seq, key, version, TOMBSTONE_HASH, None, lineage)
                for (key, version), seq in zip(live, seqs, strict=True)
            ])
        result.deleted = len(live)
        result.last_seq = seqs[-1]
        return result

    def set_checkpoint(self, name: str, value: str) -> None:
        conn = self._live()
        with self._store._errors(f"set checkpoint {name!r}"):
            self._store._write_checkpoint(conn, name, value)

    def add_quarantine(self, entries: Sequence[NewQuarantine]) -> list[int]:
        conn = self._live()
        if not entries:
            return []
        now = _now()
        rows = [
            {"flow": e.flow, "system": e.system, "entity": e.entity, "record_key": e.record_key,
             "location": e.location, "reasons": _json(list(e.reasons)), "payload": e.payload,
             "status": QuarantineStatus.OPEN.value, "created_at": now, "updated_at": now,
             "mapping_version": e.mapping_version}
            for e in entries
        ]
        stmt = t.quarantine.insert().returning(t.quarantine.c.id, sort_by_parameter_order=True)
        with self._store._errors("add quarantine entries"):
            ids = [int(row[0]) for row in conn.execute(stmt, rows)]
            conn.execute(t.quarantine_event.insert(), [
                {"entry_id": entry_id, "action": QuarantineAction.CREATED.value, "detail": "", "actor": "",
                 "recorded_at": now}
                for entry_id in ids
            ])
        return ids

    def update_quarantine(
        self, entry_id: int, *, payload: str | None = None, reasons: Sequence[str] | None = None,
        mapping_version: str | None = None,
    ) -> None:
        conn = self._live()
        values: dict[str, Any] = {"updated_at": _now()}
        if payload is not None:
            values["payload"] = payload
        if reasons is not None:
            values["reasons"] = _json(list(reasons))
        if mapping_version is not None:
            values["mapping_version"] = mapping_version
        q = t.quarantine
        with self._store._errors(f"update quarantine entry {entry_id}"):
            done = conn.execute(q.update().where(q.c.id == entry_id).values(**values)).rowcount
        if done != 1:
            raise StoreError(f"update quarantine entry {entry_id}: no such entry")

    def add_quarantine_events(self, events: Sequence[NewQuarantineEvent]) -> None:
        conn = self._live()
        if not events:
            return
        now = _now()
        rows = [
            {"entry_id": e.entry_id, "action": QuarantineAction(e.action).value, "detail": e.detail,
             "actor": e.actor, "recorded_at": now}
            for e in events
        ]
        with self._store._errors("add quarantine events"):
            conn.execute(t.quarantine_event.insert(), rows)

    def set_quarantine_status(self, ids: Sequence[int], status: QuarantineStatus) -> None:
        conn = self._live()
        unique = sorted(set(ids))
        if not unique:
            return
        q = t.quarantine
        stmt = q.update().where(q.c.id.in_(bindparam("ids", expanding=True))).values(
            status=QuarantineStatus(status).value, updated_at=_now()
        )
        with self._store._errors("set quarantine status"):
            done = sum(
                conn.execute(stmt, {"ids": unique[i:i + KEY_CHUNK]}).rowcount for i in range(0, len(unique), KEY_CHUNK)
            )
        if done != len(unique):
            raise StoreError(f"set quarantine status: {len(unique) - done} of ids {unique[:20]} do not exist")

    def put_xref(self, system: str, entity: str, external_id: str, key: str) -> None:
        conn = self._live()
        where = f"xref {system}/{entity}"
        with self._store._errors(f"put {where}"):
            linked_key = _xref_key(conn, system, entity, external_id)
            linked_external = _xref_external(conn, system, entity, key)
            if linked_key == key and linked_external == external_id:
                return
            if linked_key is not None:
                raise StoreError(
                    f"{where}: external id {external_id!r} is already linked to key {linked_key!r}; "
                    f"cannot link it to key {key!r}"
                )
            if linked_external is not None:
                raise StoreError(
                    f"{where}: key {key!r} is already linked to external id {linked_external!r}; "
                    f"cannot link it to external id {external_id!r}"
                )
            conn.execute(t.xref.insert(), {
                "system": system, "entity": entity, "external_id": external_id, "canonical_key": key,
            })

    def put_sources(self, entity: str, sources: Sequence[NewSource]) -> None:
        conn = self._live()
        if not sources:
            return
        rows = {source.key: {"e": entity, "k": source.key, "f": source.flow, "s": source.source_id,
                             "r": source.payload}
                for source in sources}  # the newest of a key wins
        sql, order = self._store._source_update
        params = list(rows.values()) if order is None else [tuple(row[name] for name in order)
                                                             for row in rows.values()]
        with self._store._errors(f"keep the source records of {entity}"):
            conn.exec_driver_sql(sql, params)

    def add_dead_letters(self, entries: Sequence[NewDeadLetter]) -> list[int]:
        conn = self._live()
        if not entries:
            return []
        now = _now()
        rows = [
            {"flow": e.flow, "system": e.system, "entity": e.entity, "record_key": e.record_key, "seq": e.seq,
             "version": e.version, "payload": e.payload, "reason": e.reason,
             "status": DeadLetterStatus.OPEN.value, "held_by": e.held_by,
             "attempts": _json([_attempt_json(a) for a in e.attempts]), "created_at": now, "updated_at": now}
            for e in entries
        ]
        stmt = t.dead_letter.insert().returning(t.dead_letter.c.id, sort_by_parameter_order=True)
        with self._store._errors("add dead letters"):
            return [int(row[0]) for row in conn.execute(stmt, rows)]

    def add_deliveries(self, entries: Sequence[DeliveryBatch]) -> None:
        conn = self._live()
        if not entries:
            return
        writer = self._store._delivery_writer
        if writer is None:
            writer = self._store._delivery_writer = BulkWriter(t.delivery.insert(), t.delivery, conn.dialect,
                                                               skip=("id",))
        stamp = writer.bind
        rows = [(e.flow, e.system, e.entity, e.group, e.records, e.first_seq, e.last_seq,
                 stamp("newest_source_time", e.newest_source_time),
                 None if e.newest_changed_at is None else stamp("newest_changed_at", e.newest_changed_at),
                 stamp("confirmed_at", e.confirmed_at), _json(e.latency), e.latency_sum, e.latency_max,
                 _json([((changed - _EPOCH) // _MICROSECOND, keys) for changed, keys in e.changes]))
                for e in entries]
        with self._store._errors("log deliveries"):
            writer.execute(conn, rows)

    def update_dead_letters(
        self, ids: Sequence[int], attempt: Attempt, *, status: DeadLetterStatus | None = None,
        reason: str | None = None,
    ) -> None:
        conn = self._live()
        unique = sorted(set(ids))
        if not unique:
            return
        d = t.dead_letter
        values: dict[str, Any] = {"updated_at": _now()}
        if status is not None:
            values["status"] = DeadLetterStatus(status).value
        if reason is not None:
            values["reason"] = reason
        added = _attempt_json(attempt)
        with self._store._errors("update dead letters"):
            for start in range(0, len(unique), KEY_CHUNK):  # one read and one UPDATE per chunk of ids
                chunk = unique[start:start + KEY_CHUNK]
                found = {row.id: row.attempts for row in conn.execute(
                    select(d.c.id, d.c.attempts).where(d.c.id.in_(chunk)))}
                missing = sorted(set(chunk) - set(found))
                if missing:
                    raise StoreError(f"update dead letters: no dead letter {', '.join(map(str, missing[:20]))}")
                histories = {entry_id: _json([*msgspec.json.decode(text, type=list[dict[str, str]]), added])
                             for entry_id, text in found.items()}
                conn.execute(d.update().where(d.c.id.in_(chunk)).values(attempts=case(histories, value=d.c.id),
                                                                        **values))


_SOURCE_UPDATE = t.state.update().where(
    t.state.c.entity == bindparam("e"), t.state.c.key == bindparam("k"),
    t.state.c.raw.is_(None) | (t.state.c.raw != bindparam("r")) | (t.state.c.raw_flow != bindparam("f")),
).values(raw_flow=bindparam("f"), raw_source_id=bindparam("s"), raw=bindparam("r"))
"""Keeps a key's raw record on its state row, leaving the row alone when its raw record did not change. A key
without a state has nothing to keep it with (records are stored before their raw records)."""


_LOG = t.change_log.c
_NEW_STATE_FROM_LOG = t.state.insert().from_select(
    ["entity", "key", "version", "content_hash", "payload", "deleted", "last_seq", "updated_at"],
    select(_LOG.entity, _LOG.key, _LOG.version, _LOG.content_hash, _LOG.payload,
           bindparam("deleted", type_=t.state.c.deleted.type), _LOG.seq,
           bindparam("updated_at", type_=t.state.c.updated_at.type))
    .where(_LOG.seq.between(bindparam("first"), bindparam("last"))),
)
"""The state rows of new keys without input hashes or raw records, copied from the change-log entries of
``first`` to ``last`` that the same transaction just wrote as their first versions (the write lock keeps every
other writer's entries out of the range); the columns not named (the input hash, the raw record) stay NULL."""


# -- row conversions ----------------------------------------------------------------------------------------------

_json_encoder = msgspec.json.Encoder()


def _json(value: object) -> str:
    return _json_encoder.encode(value).decode("utf-8")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_decode_latency = msgspec.json.Decoder(tuple[tuple[int, int], ...]).decode
_decode_changes = msgspec.json.Decoder(list[tuple[int, tuple[str, ...]]]).decode


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8")


def _state_row(row: Row[Any]) -> StateRow:
    return StateRow(
        entity=row.entity, key=row.key, version=row.version, content_hash=row.content_hash,
        payload=_bytes(row.payload), deleted=bool(row.deleted), last_seq=row.last_seq, updated_at=row.updated_at,
    )


def _change(row: Row[Any]) -> Change:
    return Change(
        seq=row.seq, entity=row.entity, key=row.key, version=row.version, op=Op(row.op),
        content_hash=row.content_hash, payload=_bytes(row.payload), recorded_at=row.recorded_at,
        lineage=Lineage(row.source_system, row.source_id, row.batch_id, row.mapping_version),
    )


def _quarantine_entry(row: Row[Any]) -> QuarantineEntry:
    return QuarantineEntry(
        id=row.id, flow=row.flow, system=row.system, entity=row.entity, record_key=row.record_key,
        location=row.location, reasons=msgspec.json.decode(row.reasons, type=list[str]), payload=row.payload,
        status=QuarantineStatus(row.status), created_at=row.created_at, updated_at=row.updated_at,
        mapping_version=row.mapping_version,
    )


def _run_record(row: Row[Any]) -> RunRecord:
    return RunRecord(
        id=row.id, flow=row.flow, started_at=row.started_at, finished_at=row.finished_at,
        status=RunStatus(row.status), records_in=row.records_in, records_out=row.records_out,
        unchanged=row.unchanged, quarantined=row.quarantined,
        detail=msgspec.json.decode(row.detail, type=dict[str, object]),
    )


def _xref_key(conn: Connection, system: str, entity: str, external_id: str) -> str | None:
    x = t.xref
    key: str | None = conn.execute(
        select(x.c.canonical_key).where(x.c.system == system, x.c.entity == entity, x.c.external_id == external_id)
    ).scalar_one_or_none()
    return key


def _xref_external(conn: Connection, system: str, entity: str, key: str) -> str | None:
    x = t.xref
    external_id: str | None = conn.execute(
        select(x.c.external_id).where(x.c.system == system, x.c.entity == entity, x.c.canonical_key == key)
    ).scalar_one_or_none()
    return external_id


def _attempt_json(attempt: Attempt) -> dict[str, str]:
    return {"at": attempt.at.astimezone(dt.UTC).isoformat(), "outcome": attempt.outcome, "detail": attempt.detail}


def _dead_letter(row: Row[Any]) -> DeadLetter:
    attempts = [Attempt(at=dt.datetime.fromisoformat(a["at"]), outcome=a["outcome"], detail=a.get("detail", ""))
                for a in msgspec.json.decode(row.attempts, type=list[dict[str, str]])]
    return DeadLetter(
        id=row.id, flow=row.flow, system=row.system, entity=row.entity, record_key=row.record_key, seq=row.seq,
        version=row.version, payload=row.payload, reason=row.reason, status=DeadLetterStatus(row.status),
        held_by=row.held_by, attempts=attempts, created_at=row.created_at, updated_at=row.updated_at,
    )


def as_utc(stamp: str | dt.datetime) -> dt.datetime:
    """A time stamp read without the column's type (an aggregate such as max, or a raw driver row) as an aware
    UTC datetime: SQLite hands it back as naive ISO text in UTC, PostgreSQL as an aware datetime."""
    value = stamp if isinstance(stamp, dt.datetime) else dt.datetime.fromisoformat(stamp)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
