"""Delivery: a dead-letter store for changes an outbound flow could not deliver, and alerts flows raise.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sf_dead_letter",
        sa.Column("id", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("flow", sa.String(), nullable=False),
        sa.Column("system", sa.String(), nullable=False),
        sa.Column("entity", sa.String(), nullable=False),
        sa.Column("record_key", sa.String(), nullable=False),
        sa.Column("seq", SEQUENCE, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("held_by", SEQUENCE, nullable=True),
        sa.Column("attempts", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sf_dead_letter"),
    )
    op.create_index("ix_sf_dead_letter_flow_status_entity_record_key", "sf_dead_letter",
                    ["flow", "status", "entity", "record_key"])
    op.create_table(
        "sf_alert",
        sa.Column("id", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("flow", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("raised_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sf_alert"),
    )
    op.create_index("ix_sf_alert_flow_id", "sf_alert", ["flow", "id"])


def downgrade() -> None:
    op.drop_index("ix_sf_alert_flow_id", table_name="sf_alert")
    op.drop_table("sf_alert")
    op.drop_index("ix_sf_dead_letter_flow_status_entity_record_key", table_name="sf_dead_letter")
    op.drop_table("sf_dead_letter")
