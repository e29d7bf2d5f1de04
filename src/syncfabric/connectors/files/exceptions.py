"""Every failure reading a drop folder becomes a TransientError or a PermanentError here, and only here.

    OSError (file busy, share unavailable, permission   ─► TransientError  (the next run tries again; the file
    denied while the writer still holds it)                                 stays where it is)
    UnicodeDecodeError, csv.Error, an empty CSV file    ─► PermanentError  (the file is wrong: fix the export or
                                                                            the encoding; it stays in the folder)

Errors name the file and, where known, the line. A single bad line is not an error: it becomes a
:class:`~syncfabric.connectors.base.RejectedRaw` and goes to quarantine.
"""

from __future__ import annotations

import csv

from syncfabric.errors import ConnectorError, PermanentError, TransientError


def translate_error(error: Exception, *, system: str, file: str, line: int | None = None,
                    encoding: str = "") -> ConnectorError:
    where = f"{file}:{line}" if line is not None else file
    if isinstance(error, UnicodeDecodeError):
        return PermanentError(f"{file}: not {encoding} text ({error.reason})", system=system)
    if isinstance(error, csv.Error):
        return PermanentError(f"{where}: {error}", system=system)
    if isinstance(error, OSError):
        return TransientError(f"{where}: {error.strerror or error}", system=system)
    return PermanentError(f"{where}: {type(error).__name__}: {error}", system=system)


def empty_file(file: str, *, system: str) -> PermanentError:
    return PermanentError(f"{file}: file is empty, expected a header row", system=system)
