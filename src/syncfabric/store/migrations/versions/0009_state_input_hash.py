"""Batch sync: the hash of the input each key's current state was last accepted from (``sf_state.input_hash``).

A full refresh skips mapping a row whose input (flow, mapping, raw record) hashes to the value kept for its key:
it would map to the record already stored. NULL when the state was written without one (deleted, other paths).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sf_state", sa.Column("input_hash", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sf_state") as batch:
        batch.drop_column("input_hash")
