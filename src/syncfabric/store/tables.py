"""The canonical store's tables, as SQLAlchemy Core metadata shared by every SQL backend.

The schema itself is created and upgraded by the Alembic migrations in ``migrations/``; this module is what the
code reads and writes through, and a test checks that both agree.

Payloads are stored as TEXT (the canonical JSON, UTF-8) so that they stay readable with any SQL client. Timestamps
are stored in UTC; :class:`UtcDateTime` hands them back timezone-aware on every backend (SQLite keeps no offset).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

VERSION_TABLE = "sf_schema_version"
"""Alembic's version table, prefixed like ours so the store can share a database with other applications."""


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always returned timezone-aware in UTC. Naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps timezone-aware UTC timestamps only")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit integer; on SQLite ``INTEGER`` so that a primary key of this type is the rowid (autoincrementing)."""

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

state = Table(
    "sf_state",
    metadata,
    Column("entity", String, nullable=False),
    Column("key", String, nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String, nullable=False),
    Column("payload", Text, nullable=True),  # canonical JSON; NULL once the key is deleted
    Column("deleted", Boolean, nullable=False),
    Column("last_seq", SEQUENCE, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("input_hash", String, nullable=True),  # the input the state was last accepted from (batch sync's skip)
    # The raw input behind the current state, so that a changed mapping can be tried on what is stored. NULL when
    # none was kept. Kept on the state row (not a table of its own): one row and one index entry fewer per record.
    Column("raw_flow", String, nullable=True),  # the inbound flow whose mapping turned it into the current state
    Column("raw_source_id", String, nullable=True),
    Column("raw", Text, nullable=True),  # the raw record as received (a CSV row as JSON, a document)
    PrimaryKeyConstraint("entity", "key"),
)

change_log = Table(
    "sf_change_log",
    metadata,
    Column("seq", SEQUENCE, autoincrement=True),  # the one global sequence, in commit order
    Column("entity", String, nullable=False),
    Column("key", String, nullable=False),
    Column("version", Integer, nullable=False),
    Column("op", String, nullable=False),
    Column("content_hash", String, nullable=False),
    Column("payload", Text, nullable=True),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("source_system", String, nullable=False),
    Column("source_id", String, nullable=False),
    Column("batch_id", String, nullable=False),
    Column("mapping_version", String, nullable=False),
    PrimaryKeyConstraint("seq"),
    Index(None, "entity", "seq"),
    Index(None, "entity", "key"),
    sqlite_autoincrement=True,
)

checkpoint = Table(
    "sf_checkpoint",
    metadata,
    Column("name", String, nullable=False),
    Column("value", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("name"),
)

xref = Table(
    "sf_xref",
    metadata,
    Column("system", String, nullable=False),
    Column("entity", String, nullable=False),
    Column("external_id", String, nullable=False),
    Column("canonical_key", String, nullable=False),
    PrimaryKeyConstraint("system", "entity", "external_id"),
    UniqueConstraint("system", "entity", "canonical_key"),
)

quarantine = Table(
    "sf_quarantine",
    metadata,
    Column("id", SEQUENCE, autoincrement=True),
    Column("flow", String, nullable=False),
    Column("system", String, nullable=False),
    Column("entity", String, nullable=False),
    Column("record_key", String, nullable=False),
    Column("location", String, nullable=False),
    Column("reasons", Text, nullable=False),  # JSON list of strings
    Column("payload", Text, nullable=False),
    Column("status", String, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("mapping_version", String, nullable=False, server_default=""),  # the mapping that rejected it last
    PrimaryKeyConstraint("id"),
    Index(None, "status", "flow"),
)

quarantine_event = Table(
    "sf_quarantine_event",
    metadata,
    Column("id", SEQUENCE, autoincrement=True),
    Column("entry_id", SEQUENCE, nullable=False),
    Column("action", String, nullable=False),
    Column("detail", Text, nullable=False),
    Column("actor", String, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("id"),
    Index(None, "entry_id", "id"),
)

run = Table(
    "sf_run",
    metadata,
    Column("id", SEQUENCE, autoincrement=True),
    Column("flow", String, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("status", String, nullable=False),
    Column("records_in", Integer, nullable=False),
    Column("records_out", Integer, nullable=False),
    Column("unchanged", Integer, nullable=False),
    Column("quarantined", Integer, nullable=False),
    Column("detail", Text, nullable=False),  # JSON object
    PrimaryKeyConstraint("id"),
    Index(None, "flow", "id"),
)

lease = Table(
    "sf_lease",
    metadata,
    Column("name", String, nullable=False),
    Column("holder", String, nullable=False),
    Column("acquired_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("name"),
)

dead_letter = Table(
    "sf_dead_letter",
    metadata,
    Column("id", SEQUENCE, autoincrement=True),
    Column("flow", String, nullable=False),
    Column("system", String, nullable=False),
    Column("entity", String, nullable=False),
    Column("record_key", String, nullable=False),
    Column("seq", SEQUENCE, nullable=False),  # the change-log entry it holds
    Column("version", Integer, nullable=False),
    Column("payload", Text, nullable=True),  # canonical JSON; NULL for a deletion
    Column("reason", Text, nullable=False),
    Column("status", String, nullable=False),
    Column("held_by", SEQUENCE, nullable=True),  # the dead letter of the same key this change is parked behind
    Column("attempts", Text, nullable=False),  # JSON list of {at, outcome, detail}
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("id"),
    Index(None, "flow", "status", "entity", "record_key"),
)

alert = Table(
    "sf_alert",
    metadata,
    Column("id", SEQUENCE, autoincrement=True),
    Column("flow", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("message", Text, nullable=False),
    Column("detail", Text, nullable=False),  # JSON object
    Column("raised_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("id"),
    Index(None, "flow", "id"),
)

delivery = Table(
    "sf_delivery",
    metadata,
    Column("id", SEQUENCE, autoincrement=True),
    Column("flow", String, nullable=False),
    Column("system", String, nullable=False),
    Column("entity", String, nullable=False),
    Column("grp", String, nullable=False),  # the plant or location the records concern ("" when none)
    Column("records", Integer, nullable=False),
    Column("first_seq", SEQUENCE, nullable=False),  # the change-log entries delivered: lowest, highest
    Column("last_seq", SEQUENCE, nullable=False),
    Column("newest_source_time", UtcDateTime, nullable=False),  # when the newest fact happened at the source
    Column("newest_changed_at", UtcDateTime, nullable=True),  # when the newest fact changed there, where known
    Column("confirmed_at", UtcDateTime, nullable=False),  # when the target confirmed the batch
    Column("latency", Text, nullable=False),  # JSON [[bucket, count], ...]: syncfabric.observe.histogram
    Column("latency_sum", Float, nullable=False),  # seconds, over the records
    Column("latency_max", Float, nullable=False),
    Column("changes", Text, nullable=False),  # JSON [[changed_at in µs since 1970, [record key, ...]], ...]
    PrimaryKeyConstraint("id"),
    Index(None, "flow", "entity", "grp"),
    Index(None, "confirmed_at"),
)
"""The delivery log: what each outbound flow's target confirmed, one row per batch, entity and group, for freshness
and latency (``syncfabric.observe``)."""
