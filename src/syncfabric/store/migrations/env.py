"""Alembic environment for the canonical store's schema.

Migrations run only through :meth:`syncfabric.store.sql.SqlStore.migrate`, which passes an open connection (inside
the store's write transaction, so concurrent starters serialize) as ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from syncfabric.store.tables import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the store's migrations run through Store.migrate(), which provides the connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    # SQLite alters tables by copying them; batch mode lets later revisions use op.alter_column and friends.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
