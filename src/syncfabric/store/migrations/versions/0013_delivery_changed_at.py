"""Observability: the time a delivered record's fact changed at its source, where known (``sf_delivery.changed_at``).

A snapshot source stamps its balances with the read time (``source_time``), which says how fresh the target is but
not how long a change took to reach it; latency is measured from ``changed_at``. NULL when the record gives no
change time.

Revision ID: 0013
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sf_delivery", sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sf_delivery") as batch:
        batch.drop_column("changed_at")
