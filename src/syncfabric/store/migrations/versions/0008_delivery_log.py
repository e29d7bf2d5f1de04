"""Observability: the delivery log, one row per record a target confirmed, with its source time.

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None

SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
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
        sa.PrimaryKeyConstraint("id", name="pk_sf_delivery"),
    )
    op.create_index("ix_sf_delivery_flow_entity_grp", "sf_delivery", ["flow", "entity", "grp"])
    op.create_index("ix_sf_delivery_confirmed_at", "sf_delivery", ["confirmed_at"])


def downgrade() -> None:
    op.drop_index("ix_sf_delivery_confirmed_at", table_name="sf_delivery")
    op.drop_index("ix_sf_delivery_flow_entity_grp", table_name="sf_delivery")
    op.drop_table("sf_delivery")
