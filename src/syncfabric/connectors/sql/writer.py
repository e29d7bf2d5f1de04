"""Writing target-shaped records into a table: an upsert by key columns, one savepoint per record.

Each record is an ``UPDATE ... WHERE key = ...`` and, when no row matched, an ``INSERT``, so that it works on any
database SQLAlchemy speaks and re-sending a record changes nothing. A record the database refuses (a column the
table does not have, a constraint, a value of the wrong type) rolls back to its savepoint and is rejected with the
database's reason; the others of the batch commit. A lost connection or a lock wait fails the batch as a whole
(a TransientError), which the outbound flow retries. A deletion (no payload) deletes the row of its key columns,
taken from ``OutboundRecord.target_key`` (an outbound mapping's key fields) or, without one, from the record key.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import msgspec
from sqlalchemy import Engine, MetaData, Table, and_, delete, insert, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

from syncfabric.connectors.base import OutboundRecord, WriteOutcome
from syncfabric.connectors.sql.configuration import SqlTarget
from syncfabric.connectors.sql.exceptions import translate_error
from syncfabric.errors import PermanentError


def write_rows(engine: Engine, target: SqlTarget, records: Sequence[OutboundRecord], *, system: str,
               entity: str) -> WriteOutcome:
    outcome = WriteOutcome()
    try:
        with engine.begin() as conn:
            schema, _, name = target.table.rpartition(".")
            table = Table(name, MetaData(), schema=schema or None, autoload_with=conn)
            keys = list(target.key) or [c.name for c in table.primary_key.columns]
            missing = [key for key in keys if key not in table.c]
            if not keys or missing:
                raise PermanentError(f"table {target.table!r} has no key column {', '.join(map(repr, missing))}"
                                     if missing else f"table {target.table!r} has no primary key: give key: [...]",
                                     system=system, entity=entity)
            for record in records:
                reason = _write_one(conn, table, keys, record)
                if reason is None:
                    outcome.accepted.append(record.key)
                else:
                    outcome.rejected[record.key] = reason
    except SQLAlchemyError as exc:
        raise translate_error(exc, system=system, entity=entity) from exc
    return outcome


def _write_one(conn: Any, table: Table, keys: list[str], record: OutboundRecord) -> str | None:
    """None when written, else why the record was refused (the savepoint rolled back)."""
    values = record.target_key if record.payload is None else record.payload
    if values is None:
        values = dict(zip(keys, record.key.split("|"), strict=False))
    unknown = [name for name in values if name not in table.c]
    if unknown and record.payload is not None:
        return (f"table {table.name!r} has no column {', '.join(map(repr, unknown))} "
                f"(columns: {', '.join(table.c.keys())})")
    absent = [key for key in keys if values.get(key) is None]
    if absent:
        return f"no value for key column {', '.join(map(repr, absent))} of table {table.name!r}"
    where = and_(*(table.c[key] == values[key] for key in keys))
    savepoint = conn.begin_nested()
    try:
        if record.payload is None:
            conn.execute(delete(table).where(where))
        else:
            row = {name: _column_value(value) for name, value in values.items()}
            changed = {name: value for name, value in row.items() if name not in keys}
            if changed:
                found = conn.execute(update(table).where(where).values(changed)).rowcount > 0
            else:
                found = conn.execute(table.select().where(where)).first() is not None
            if not found:
                conn.execute(insert(table).values(row))
        savepoint.commit()
    except (DBAPIError, StatementError) as exc:
        with suppress(SQLAlchemyError):
            savepoint.rollback()
        error = translate_error(exc, system="", entity="")
        if not isinstance(error, PermanentError):
            raise
        return str(error)
    return None


def _column_value(value: Any) -> Any:
    """Nested values (a quantity, a list) are stored as JSON text; the rest as they are."""
    return msgspec.json.encode(value).decode() if isinstance(value, dict | list) else value
