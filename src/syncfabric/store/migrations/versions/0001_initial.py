"""The canonical store's first schema: state, change log, checkpoints, xref, quarantine, runs.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the column types, so this revision never changes when tables.py does.
SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sf_state",
        sa.Column("entity", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("last_seq", SEQUENCE, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("entity", "key", name="pk_sf_state"),
    )
    op.create_table(
        "sf_change_log",
        sa.Column("seq", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("entity", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("op", sa.String(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
        sa.Column("source_system", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("batch_id", sa.String(), nullable=False),
        sa.Column("mapping_version", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_sf_change_log"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_sf_change_log_entity_seq", "sf_change_log", ["entity", "seq"])
    op.create_index("ix_sf_change_log_entity_key", "sf_change_log", ["entity", "key"])
    op.create_table(
        "sf_checkpoint",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_sf_checkpoint"),
    )
    op.create_table(
        "sf_xref",
        sa.Column("system", sa.String(), nullable=False),
        sa.Column("entity", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("canonical_key", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("system", "entity", "external_id", name="pk_sf_xref"),
        sa.UniqueConstraint("system", "entity", "canonical_key", name="uq_sf_xref_system_entity_canonical_key"),
    )
    op.create_table(
        "sf_quarantine",
        sa.Column("id", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("flow", sa.String(), nullable=False),
        sa.Column("system", sa.String(), nullable=False),
        sa.Column("entity", sa.String(), nullable=False),
        sa.Column("record_key", sa.String(), nullable=False),
        sa.Column("location", sa.String(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sf_quarantine"),
    )
    op.create_index("ix_sf_quarantine_status_flow", "sf_quarantine", ["status", "flow"])
    op.create_table(
        "sf_run",
        sa.Column("id", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("flow", sa.String(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("records_in", sa.Integer(), nullable=False),
        sa.Column("records_out", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sf_run"),
    )
    op.create_index("ix_sf_run_flow_id", "sf_run", ["flow", "id"])


def downgrade() -> None:
    op.drop_index("ix_sf_run_flow_id", table_name="sf_run")
    op.drop_table("sf_run")
    op.drop_index("ix_sf_quarantine_status_flow", table_name="sf_quarantine")
    op.drop_table("sf_quarantine")
    op.drop_table("sf_xref")
    op.drop_table("sf_checkpoint")
    op.drop_index("ix_sf_change_log_entity_key", table_name="sf_change_log")
    op.drop_index("ix_sf_change_log_entity_seq", table_name="sf_change_log")
    op.drop_table("sf_change_log")
    op.drop_table("sf_state")
