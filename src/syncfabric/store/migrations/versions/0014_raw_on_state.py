"""The raw source record of a key is kept on its state row (``sf_state.raw_*``); ``sf_source`` is gone.

A full refresh wrote three rows per record (state, change log, raw record), each a table b-tree entry and a
primary-key index entry; the raw record on the state row saves one row and one index entry per record. Raw records
of keys that have no state (never visible: every reader joined them to the state) are dropped with the table.
No hash of the raw record is kept: an unchanged one is recognised by its text when it is written again.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

RAW = ("raw_flow", "raw_source_id", "raw")
FROM_SOURCE = {"raw_flow": "flow", "raw_source_id": "source_id", "raw": "payload"}


def upgrade() -> None:
    for name in RAW:
        op.add_column("sf_state", sa.Column(name, sa.Text() if name == "raw" else sa.String(), nullable=True))
    match = "s.entity = sf_state.entity AND s.key = sf_state.key"
    columns = ", ".join(RAW)
    values = ", ".join(f"s.{FROM_SOURCE[name]}" for name in RAW)
    op.execute(f"UPDATE sf_state SET ({columns}) = (SELECT {values} FROM sf_source s WHERE {match})"
               f" WHERE EXISTS (SELECT 1 FROM sf_source s WHERE {match})")
    op.drop_table("sf_source")


def downgrade() -> None:
    op.create_table(
        "sf_source",
        sa.Column("entity", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("flow", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("raw_hash", sa.String(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entity", "key", name="pk_sf_source"),
    )
    op.execute("INSERT INTO sf_source (entity, key, flow, source_id, raw_hash, payload, updated_at)"
               " SELECT entity, key, raw_flow, raw_source_id, '', raw, updated_at FROM sf_state"
               " WHERE raw IS NOT NULL")
    with op.batch_alter_table("sf_state") as batch:
        for name in RAW:
            batch.drop_column(name)
