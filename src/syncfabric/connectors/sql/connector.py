"""Reads tables and queries of any SQLAlchemy database in keyset pages, in full or by a watermark column.

Full read: rows in key order, ``page_size`` at a time, each query starting after the last key of the page before
(``WHERE (k1, k2) > (:a, :b) ORDER BY k1, k2 LIMIT n``, written out with ``OR``/``AND`` so every database takes
it). The cursor holds that last key, so a read resumes exactly after the last committed page. The page that ends
the table is ``complete``; its cursor means "done", and the next full read starts from the beginning.

Net-change read: rows whose watermark is at or after the highest watermark read so far less ``overlap``, in
(watermark, key) order, paged the same way. The watermark comes from the data, never from the clock of either
side. A cursor inside a read keeps the lower bound the read started from, so a resumed read continues that same
read; the cursor after its last page keeps only the highest watermark.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import (
    ColumnElement,
    Engine,
    MetaData,
    Select,
    Table,
    and_,
    column,
    create_engine,
    literal_column,
    make_url,
    or_,
    select,
    text,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from syncfabric.connectors import watermark as wm
from syncfabric.connectors.base import Capability, Connector, OutboundRecord, Page, RawRecord, WriteOutcome
from syncfabric.connectors.sql.configuration import SqlConfig, SqlSource
from syncfabric.connectors.sql.exceptions import translate_error
from syncfabric.errors import PermanentError
from syncfabric.flows.retry import RetryPolicy, call_with_retry


class FullCursor(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    after: list[wm.Tagged] | None = None
    """Key of the last row read."""
    done: bool = False
    """The read reached the end of the table: the next full read starts again from the beginning."""


class ChangesCursor(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    high: wm.Tagged | None = None
    """The highest watermark read so far."""
    since: wm.Tagged | None = None
    """Inside a read: the lower bound it started from."""
    after: list[wm.Tagged] | None = None
    """Inside a read: (watermark, key...) of the last row read."""


class SqlConnector(Connector):
    kind = "sql"
    capabilities = Capability.READ_FULL | Capability.READ_CHANGES | Capability.WRITE
    config_type = SqlConfig
    config: SqlConfig
    secret_names = ("password",)

    _engine: Engine | None = None

    def open(self) -> None:
        if self._engine is None:
            with self._translating():
                self._engine = create_engine(self.url(), pool_pre_ping=True, connect_args=self._connect_args())

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> Engine:
        self.open()
        assert self._engine is not None
        return self._engine

    @classmethod
    def source_problems(cls, config: SqlConfig, source: str, mode: str) -> list[str]:
        named = config.sources.get(source)
        if named is None and any(char.isspace() for char in source.strip()):
            return [f"source {source!r} looks like a query: declare it under the system's connection sources "
                    "({name: {query: ..., key: [...]}}) and name it here"]
        if mode == "changes" and (named is None or named.watermark is None):
            where = f"source {source!r}" if named else f"table {source!r} (not declared under sources)"
            return [f"{where} has no watermark column, which mode changes needs: declare it under sources with "
                    "watermark: COLUMN, or use mode: full"]
        return []

    def url(self) -> URL:
        """The configured URL with the password from the credentials and a SQLite path made absolute."""
        url = make_url(self.config.url)
        backend, _, driver = url.drivername.partition("+")
        if backend in ("postgresql", "postgres") and not driver:
            url = url.set(drivername="postgresql+psycopg")
        if backend == "sqlite" and url.database and url.database != ":memory:" and not url.database.startswith(
                "file:"):
            url = url.set(database=str(self.base_dir / Path(url.database)))
        if (password := self.secrets.get("password")) and backend != "sqlite":
            url = url.set(password=password)
        return url

    def _connect_args(self) -> dict[str, Any]:
        backend = make_url(self.config.url).get_backend_name()
        if backend in ("postgresql", "postgres"):
            return {"connect_timeout": max(1, round(self.config.connect_timeout_seconds))}
        if backend == "sqlite":
            return {"timeout": self.config.connect_timeout_seconds}
        return {}

    def test_connection(self) -> None:
        with self._translating(), self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # ---- reading -----------------------------------------------------------------------------------------------

    def read_full(self, entity: str, cursor: str | None = None) -> Iterator[Page]:
        source = self.source(entity)
        saved = msgspec.json.decode(cursor, type=FullCursor) if cursor else FullCursor()
        after = None if saved.done or saved.after is None else [wm.untag(value) for value in saved.after]
        with self._translating(entity), self.engine.connect() as conn:
            base, columns, key_names = self._shape(conn, entity, source)
            keys = [columns[name] for name in key_names]
            while True:
                query = base.order_by(*keys).limit(self.config.page_size)
                if after is not None:
                    query = query.where(_after(keys, after))
                names, rows = self._fetch(conn, query, entity)
                if rows:
                    after = [rows[-1][names.index(key.name)] for key in keys]
                records = self._records(entity, names, rows, [key.name for key in keys])
                if len(rows) < self.config.page_size:
                    yield Page(records, msgspec.json.encode(FullCursor(done=True)).decode(), complete=True)
                    return
                assert after is not None
                yield Page(records, msgspec.json.encode(FullCursor(after=[wm.tag(v) for v in after])).decode())

    def read_changes(self, entity: str, since: str | None) -> Iterator[Page]:
        source = self.source(entity)
        if source.watermark is None:
            raise PermanentError(f"source {entity!r} has no watermark column: give watermark: COLUMN to read "
                                 "changes, or read it in full", system=self.system, entity=entity)
        saved = msgspec.json.decode(since, type=ChangesCursor) if since else ChangesCursor()
        high = wm.untag(saved.high) if saved.high else None
        if saved.after is not None:
            lower = wm.untag(saved.since) if saved.since else None
            after: list[Any] | None = [wm.untag(value) for value in saved.after]
        else:
            lower, after = wm.step_back(high, source.overlap), None
        with self._translating(entity), self.engine.connect() as conn:
            base, columns, key_names = self._shape(conn, entity, source)
            mark = columns[source.watermark]
            order = [mark, *(columns[name] for name in key_names)]
            base = base.where(mark.is_not(None))
            if lower is not None:
                base = base.where(mark >= lower)
            while True:
                query = base.order_by(*order).limit(self.config.page_size)
                if after is not None:
                    query = query.where(_after(order, after))
                names, rows = self._fetch(conn, query, entity)
                position = [names.index(element.name) for element in order]
                if rows:  # in watermark order, so the last row holds the page's highest watermark
                    high = wm.later(high, rows[-1][position[0]])
                    after = [rows[-1][index] for index in position]
                records = self._records(entity, names, rows, key_names)
                if len(rows) < self.config.page_size:
                    final = ChangesCursor(high=None if high is None else wm.tag(high))
                    yield Page(records, msgspec.json.encode(final).decode())
                    return
                assert after is not None
                inside = ChangesCursor(high=wm.tag(high), since=None if lower is None else wm.tag(lower),
                                       after=[wm.tag(value) for value in after])
                yield Page(records, msgspec.json.encode(inside).decode())

    # ---- writing -----------------------------------------------------------------------------------------------

    def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
        """Upsert each record into the entity's target table by its key columns (:mod:`.writer`)."""
        from syncfabric.connectors.sql.writer import write_rows

        target = self.config.targets.get(entity)
        if target is None:
            raise PermanentError(f"no target table for entity {entity!r}: give it under the connection's targets "
                                 f"({{{entity}: {{table: ..., key: [...]}}}})", system=self.system, entity=entity)
        with self._translating(entity):
            return write_rows(self.engine, target, records, system=self.system, entity=entity)

    def source(self, name: str) -> SqlSource:
        """The named source of the configuration, or the table of that name."""
        return self.config.sources.get(name) or SqlSource(table=name)

    def _shape(self, conn: Any, entity: str, source: SqlSource) -> tuple[Select[Any], dict[str, Any], list[str]]:
        """``SELECT`` of every column of the source, its columns by name (for conditions and ordering), and the
        names of its key columns."""
        if source.query is not None:
            named = [source.watermark, *source.key] if source.watermark else list(source.key)
            subquery = text(f"({source.query}) sf_source")  # no AS: Oracle refuses it for a table alias
            columns = {name: column(name) for name in named}
            return select(literal_column("*")).select_from(subquery), columns, list(source.key)
        assert source.table is not None
        schema, _, name = source.table.rpartition(".")
        table = Table(name, MetaData(), schema=schema or None, autoload_with=conn)
        keys = list(source.key) or [c.name for c in table.primary_key.columns]
        if not keys:
            raise PermanentError(f"table {source.table!r} has no primary key: give key: [COLUMN, ...] for it under "
                                 "sources", system=self.system, entity=entity)
        unknown = [name for name in [*keys, source.watermark] if name is not None and name not in table.c]
        if unknown:
            raise PermanentError(f"table {source.table!r} has no column {', '.join(map(repr, unknown))} (columns: "
                                 f"{', '.join(table.c.keys())})", system=self.system, entity=entity)
        return select(table), dict(table.c.items()), keys

    def _records(self, entity: str, names: list[str], rows: list[Any], key_names: list[str]) -> list[RawRecord]:
        """Rows as raw records of JSON builtins (date-times and decimals as text, as any other source gives them),
        each located by its key (``items:A-100``)."""
        data = msgspec.to_builtins([dict(zip(names, row, strict=True)) for row in rows])
        at = [names.index(name) for name in key_names]
        return [RawRecord(values, location=f"{entity}:{'|'.join(str(row[i]) for i in at)}")
                for values, row in zip(data, rows, strict=True)]

    def _fetch(self, conn: Any, query: Select[Any], entity: str) -> tuple[list[str], list[Any]]:
        """Column names and rows of a page, retried on transient failures (SQLAlchemy opens a lost connection again
        once the failed transaction is rolled back). The read transaction ends with the page, so that no lock is
        held on the source while the page is stored."""

        def once() -> tuple[list[str], list[Any]]:
            try:
                result = conn.execute(query)
                names, rows = list(result.keys()), result.fetchall()
                conn.rollback()
            except SQLAlchemyError as exc:
                with suppress(SQLAlchemyError):
                    conn.rollback()
                raise translate_error(exc, system=self.system, entity=entity) from exc
            return names, rows

        return call_with_retry(once, RetryPolicy(max_attempts=self.config.max_attempts, max_delay=10.0))

    @contextmanager
    def _translating(self, entity: str = "") -> Iterator[None]:
        try:
            yield
        except (SQLAlchemyError, ImportError) as exc:
            raise translate_error(exc, system=self.system, entity=entity) from exc


def _after(order: Sequence[ColumnElement[Any]], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows after ``values`` in ``order``: (a > x) OR (a = x AND b > y) OR ..."""
    terms = []
    for index, element in enumerate(order):
        equal = [order[j] == values[j] for j in range(index)]
        terms.append(and_(*equal, element > values[index]))
    return or_(*terms)
