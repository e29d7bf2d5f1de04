"""Configuration of a database read through SQLAlchemy."""

from __future__ import annotations

from typing import Annotated

import msgspec


class SqlSource(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    table: str | None = None
    """A table or view to read, optionally with its schema (``erp.items``). Give ``table`` or ``query``."""
    query: str | None = None
    """A SELECT to read instead of a table; its result is paged as a subquery, so it must not end in ``;``,
    ``ORDER BY`` or ``LIMIT``. Needs ``key``."""
    key: list[str] = []
    """Columns that identify a row, used for keyset paging (``WHERE key > last ORDER BY key``) and in each row's
    location. Defaults to a table's primary key."""
    watermark: str | None = None
    """A column that grows with every change (``last_modified_at``, a row version): net-change reads rows whose
    watermark is at or after the highest one already read, less ``overlap``. Rows without one are read only by a
    full read."""
    overlap: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    """How far back a net-change read starts before the highest watermark already read, to catch changes that
    committed late with an earlier watermark: seconds for date-time watermarks, units for numeric ones. Rows read
    twice change nothing (their content hash is unchanged)."""

    def __post_init__(self) -> None:
        if (self.table is None) == (self.query is None):
            raise ValueError("a source needs either table or query (not both)")
        if self.query is not None and not self.key:
            raise ValueError("a query source needs key: the columns that identify a row")
        if self.query is not None and self.query.rstrip().endswith(";"):
            raise ValueError("a source query must not end with ';'")


class SqlTarget(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    table: str
    """The table an outbound flow writes the entity's records into (optionally ``schema.table``)."""
    key: list[str] = []
    """Columns that identify a row: a record updates the row with its key values, or inserts one. Defaults to the
    table's primary key."""


class SqlConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: str
    """SQLAlchemy database URL without password (``postgresql://erp@db.example.com/erp``, ``sqlite:///erp.db``,
    ``mssql+pyodbc://...``); the password comes from ``credentials: {password: {env: VAR}}``. A relative SQLite
    path is relative to the estate file's folder. ``postgresql://`` uses psycopg 3."""
    sources: dict[str, SqlSource] = {}
    """Named tables or queries; a flow's ``source`` names one of them. A ``source`` not listed here is read as a
    table of that name, keyed by its primary key, without a watermark."""
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    """Rows per page: per query and per commit to the store."""
    connect_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """Limit for opening a connection (PostgreSQL) or waiting for a lock (SQLite); running into it is retried."""
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 5
    """Tries per page query on transient failures (a lost connection is opened again, a lock waited for), with
    capped exponential backoff; then the run fails and the next one resumes after the last committed page."""
    targets: dict[str, SqlTarget] = {}
    """Outbound: per canonical entity, the table its records are upserted into (by key columns). Give the flow an
    outbound ``mapping:`` so that the records have the table's columns."""

    def __post_init__(self) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(self.url)
        except ArgumentError:
            raise ValueError("url is not a database URL (dialect+driver://user@host/database)") from None
        if parsed.password:
            raise ValueError("url must not hold a password: give it under credentials: password: {env: VAR}")
