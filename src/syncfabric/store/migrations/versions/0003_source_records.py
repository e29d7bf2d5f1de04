"""Raw source records behind the current state (``sf_source``) and the mapping version of quarantine entries.

``mapping diff`` re-maps the raw input of stored records with the estate's current mappings; records stored before
this revision have no raw form kept and are counted as not checked until their source sends them again.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sf_source",
        sa.Column("entity", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("flow", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("raw_hash", sa.String(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("entity", "key", name="pk_sf_source"),
    )
    with op.batch_alter_table("sf_quarantine") as batch:
        batch.add_column(sa.Column("mapping_version", sa.String(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("sf_quarantine") as batch:
        batch.drop_column("mapping_version")
    op.drop_table("sf_source")
