"""Every database failure becomes a TransientError or a PermanentError here, and only here.

    OperationalError, InterfaceError,              ─► TransientError  (connection lost or refused, timeout,
    TimeoutError (pool), DisconnectionError,                            lock wait, server shutting down)
    an invalidated connection
    ProgrammingError, IntegrityError, DataError,   ─► PermanentError  (no such table or column, bad query,
    NotSupportedError, InternalError, NoSuchTable,                      missing driver, anything else)
    a driver that is not installed, other errors

SQLite reports some mistakes in the query as ``OperationalError`` (``no such table``, ``syntax error``): those are
permanent too.
"""

from __future__ import annotations

import re

from sqlalchemy import exc as sa

from syncfabric.errors import ConnectorError, PermanentError, TransientError

_TRANSIENT = (sa.OperationalError, sa.InterfaceError, sa.TimeoutError, sa.DisconnectionError)
_SQLITE_MISTAKE = re.compile(r"no such (table|column|function)|syntax error|has no column|ambiguous column|"
                             r"incomplete input|unrecognized token")


def translate_error(error: BaseException, *, system: str, entity: str = "") -> ConnectorError:
    """The error to raise for a failure of SQLAlchemy or its driver."""
    detail = _detail(error)
    if isinstance(error, sa.NoSuchTableError):
        return PermanentError(f"database has no table {error}", system=system, entity=entity)
    if isinstance(error, sa.NoSuchModuleError | ImportError):
        return PermanentError(f"database driver not installed: {detail}", system=system, entity=entity)
    transient = isinstance(error, _TRANSIENT) or bool(getattr(error, "connection_invalidated", False))
    if transient and isinstance(error, sa.OperationalError) and _SQLITE_MISTAKE.search(detail):
        transient = False
    if transient:
        return TransientError(f"database unavailable: {detail}", system=system, entity=entity)
    return PermanentError(f"database refused the query: {detail}", system=system, entity=entity)


def _detail(error: BaseException) -> str:
    """The driver's own message, first line only (SQLAlchemy appends the statement and a link)."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    return f"{type(original).__name__}: {text[0] if text else ''}".rstrip(": ")
