"""Observability: the delivery log keeps one row per confirmed batch, entity and group instead of one per record.

Each row: the records' count, first and last change-log sequence, newest source time and change time, the
confirmation time, the delivery latencies as counts per fixed log-spaced bucket (``syncfabric.observe.histogram``)
with their exact sum and maximum, and the keys of the records that say when they changed, by change time.
Existing rows are converted: the records a flow's target confirmed at the same time (one batch) become one row per
entity and group, with the same counts, newest times, latencies and change times.

Downgrade keeps one per-record row per batch row (its newest source and change time, its last sequence, no key):
freshness stays right; counts and percentiles do not.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import msgspec
import sqlalchemy as sa
from alembic import op

from syncfabric.store.tables import UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICROSECOND = dt.timedelta(microseconds=1)

OLD = sa.table("sf_delivery", sa.column("id", SEQUENCE), sa.column("flow", sa.String), sa.column("system", sa.String),
               sa.column("entity", sa.String), sa.column("record_key", sa.String), sa.column("grp", sa.String),
               sa.column("seq", SEQUENCE), sa.column("source_time", UtcDateTime),
               sa.column("confirmed_at", UtcDateTime), sa.column("changed_at", UtcDateTime))
NEW = sa.table("sf_delivery", sa.column("flow", sa.String), sa.column("system", sa.String),
               sa.column("entity", sa.String), sa.column("grp", sa.String), sa.column("records", sa.Integer),
               sa.column("first_seq", SEQUENCE), sa.column("last_seq", SEQUENCE),
               sa.column("newest_source_time", UtcDateTime), sa.column("newest_changed_at", UtcDateTime),
               sa.column("confirmed_at", UtcDateTime), sa.column("latency", sa.Text),
               sa.column("latency_sum", sa.Float), sa.column("latency_max", sa.Float), sa.column("changes", sa.Text))


def upgrade() -> None:
    conn = op.get_bind()
    batches = list(_batches(conn))
    _drop()
    op.create_table(
        "sf_delivery",
        sa.Column("id", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("flow", sa.String(), nullable=False),
        sa.Column("system", sa.String(), nullable=False),
        sa.Column("entity", sa.String(), nullable=False),
        sa.Column("grp", sa.String(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("first_seq", SEQUENCE, nullable=False),
        sa.Column("last_seq", SEQUENCE, nullable=False),
        sa.Column("newest_source_time", TIMESTAMP, nullable=False),
        sa.Column("newest_changed_at", TIMESTAMP, nullable=True),
        sa.Column("confirmed_at", TIMESTAMP, nullable=False),
        sa.Column("latency", sa.Text(), nullable=False),
        sa.Column("latency_sum", sa.Float(), nullable=False),
        sa.Column("latency_max", sa.Float(), nullable=False),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sf_delivery"),
    )
    _indexes()
    if batches:
        conn.execute(NEW.insert(), batches)


def _batches(conn: sa.Connection) -> Iterator[dict[str, object]]:
    """The old rows, one per record, summed up per flow, system, entity, group and confirmation time."""
    from syncfabric.observe.delivery_log import summarize

    o = OLD.c
    rows = conn.execute(sa.select(OLD).order_by(o.flow, o.system, o.entity, o.grp, o.confirmed_at, o.id))
    current: tuple | None = None
    records: list[tuple] = []

    def done() -> dict[str, object]:
        assert current is not None
        b = summarize(*current, records)
        return {"flow": b.flow, "system": b.system, "entity": b.entity, "grp": b.group, "records": b.records,
                "first_seq": b.first_seq, "last_seq": b.last_seq, "newest_source_time": b.newest_source_time,
                "newest_changed_at": b.newest_changed_at, "confirmed_at": b.confirmed_at,
                "latency": msgspec.json.encode(b.latency).decode(), "latency_sum": b.latency_sum,
                "latency_max": b.latency_max,
                "changes": msgspec.json.encode([((at - EPOCH) // MICROSECOND, keys) for at, keys in b.changes])
                .decode()}

    for row in rows:
        key = (row.flow, row.system, row.entity, row.grp, row.confirmed_at)
        if key != current:
            if current is not None:
                yield done()
            current, records = key, []
        records.append((row.record_key, row.seq, row.source_time, row.changed_at))
    if current is not None:
        yield done()


def _drop() -> None:
    op.drop_index("ix_sf_delivery_confirmed_at", table_name="sf_delivery")
    op.drop_index("ix_sf_delivery_flow_entity_grp", table_name="sf_delivery")
    op.drop_table("sf_delivery")


def _indexes() -> None:
    op.create_index("ix_sf_delivery_flow_entity_grp", "sf_delivery", ["flow", "entity", "grp"])
    op.create_index("ix_sf_delivery_confirmed_at", "sf_delivery", ["confirmed_at"])


def downgrade() -> None:
    conn = op.get_bind()
    n = NEW.c
    rows = [{"flow": row.flow, "system": row.system, "entity": row.entity, "record_key": "", "grp": row.grp,
             "seq": row.last_seq, "source_time": row.newest_source_time, "confirmed_at": row.confirmed_at,
             "changed_at": row.newest_changed_at}
            for row in conn.execute(sa.select(n.flow, n.system, n.entity, n.grp, n.last_seq, n.newest_source_time,
                                              n.confirmed_at, n.newest_changed_at))]
    _drop()
    op.create_table(
        "sf_delivery",
        sa.Column("id", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("flow", sa.String(), nullable=False),
        sa.Column("system", sa.String(), nullable=False),
        sa.Column("entity", sa.String(), nullable=False),
        sa.Column("record_key", sa.String(), nullable=False),
        sa.Column("grp", sa.String(), nullable=False),
        sa.Column("seq", SEQUENCE, nullable=False),
        sa.Column("source_time", TIMESTAMP, nullable=False),
        sa.Column("confirmed_at", TIMESTAMP, nullable=False),
        sa.Column("changed_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sf_delivery"),
    )
    _indexes()
    if rows:
        conn.execute(OLD.insert(), rows)
