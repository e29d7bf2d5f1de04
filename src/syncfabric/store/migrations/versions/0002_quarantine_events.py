"""Quarantine history: one row per step of an entry (created, edited, replayed, failed replay, discarded).

Entries that exist already get their ``created`` step, dated when they were created.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sf_quarantine_event",
        sa.Column("id", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("entry_id", SEQUENCE, nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sf_quarantine_event"),
    )
    op.create_index("ix_sf_quarantine_event_entry_id_id", "sf_quarantine_event", ["entry_id", "id"])
    op.execute(
        "INSERT INTO sf_quarantine_event (entry_id, action, detail, actor, recorded_at) "
        "SELECT id, 'created', '', '', created_at FROM sf_quarantine ORDER BY id"
    )


def downgrade() -> None:
    op.drop_index("ix_sf_quarantine_event_entry_id_id", table_name="sf_quarantine_event")
    op.drop_table("sf_quarantine_event")
