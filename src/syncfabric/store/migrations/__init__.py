"""Alembic migrations of the canonical store's schema (run by ``Store.migrate()``)."""
