"""Every failure talking to Tryton becomes a TransientError or a PermanentError here, and only here.

    httpx.TimeoutException, httpx.NetworkError,       ─► TransientError  (retry; ``retry_after`` from the header)
    httpx.RemoteProtocolError, 408, 425, 429, 5xx     (as every HTTP connector: syncfabric.connectors.http)
    ConcurrencyException, TimeOutException,
    RateLimitException, a database that is locked
    UserError (and the validation errors built on it) ─► PermanentError  (the message Tryton shows its users)
    UserWarning (when not accepted), LoginException,
    401, 403 after a fresh login, other 4xx, 501, 505,
    any other server exception

:class:`TrytonFault` carries an ``error`` answer of the JSON-RPC protocol (``["UserError", [message, description,
domain]]``, or ``[text, traceback]`` for an unexpected server exception) until it is translated.
"""

from __future__ import annotations

from typing import Any

import httpx

from syncfabric.connectors.http import translate_http_error
from syncfabric.errors import ConnectorError, PermanentError, TransientError

_TRANSIENT_KINDS = frozenset({"ConcurrencyException", "TimeOutException", "RateLimitException"})
_TRANSIENT_TEXT = ("database is locked", "could not serialize", "deadlock detected", "OperationalError")


class TrytonFault(Exception):
    """An ``error`` answer from the server, before translation."""

    def __init__(self, error: Any) -> None:
        self.error = error
        parts = error if isinstance(error, list | tuple) else [error]
        self.kind = str(parts[0]) if parts else "error"
        self.args_ = parts[1] if len(parts) > 1 else None
        super().__init__(self.message)

    @property
    def warning_name(self) -> str | None:
        if self.kind == "UserWarning" and isinstance(self.args_, list | tuple) and self.args_:
            return str(self.args_[0])
        return None

    @property
    def message(self) -> str:
        args = self.args_
        if self.kind == "UserError" and isinstance(args, list | tuple) and args:
            text = " - ".join(str(part) for part in args[:2] if part)
            return f"Tryton: {text}"
        if self.kind == "UserWarning" and isinstance(args, list | tuple) and len(args) > 1:
            text = " - ".join(str(part) for part in args[1:3] if part)
            return f"Tryton warning {args[0]!r}: {text}"
        if self.kind in ("LoginException", "ConcurrencyException"):
            return f"Tryton {self.kind}: {args}"
        if self.kind in _TRANSIENT_KINDS:
            return f"Tryton {self.kind}"
        return f"Tryton server error: {self.detail}"[:500]

    @property
    def detail(self) -> str:
        """For an unexpected server exception: the last line of its traceback when the server sends one (in
        development mode), else its text."""
        trace = self.args_ if isinstance(self.args_, str) else ""
        lines = [line.strip() for line in trace.splitlines() if line.strip()]
        return lines[-1] if lines else self.kind


def translate_fault(fault: TrytonFault, *, system: str, entity: str = "", key: str = "") -> ConnectorError:
    context = {"system": system, "entity": entity, "key": key}
    if fault.kind in _TRANSIENT_KINDS or any(text in fault.detail for text in _TRANSIENT_TEXT):
        return TransientError(fault.message, **context)
    if fault.kind == "UserWarning":
        return PermanentError(fault.message + " (set accept_warnings: true on the system to accept warnings)",
                              **context)
    return PermanentError(fault.message, **context)


def translate_error(
    problem: httpx.HTTPError | httpx.Response, *, system: str, entity: str = "", key: str = ""
) -> ConnectorError:
    """The error to raise for a failed request (``problem`` is the httpx error) or an unsuccessful response: the
    classification every HTTP connector shares, with a refused login said as such."""
    if isinstance(problem, httpx.Response) and problem.status_code in (401, 403):
        return PermanentError(f"Tryton refused the login ({problem.status_code} {problem.reason_phrase}): check "
                              "user and password", system=system, entity=entity, key=key)
    return translate_http_error(problem, what="Tryton", system=system, entity=entity, key=key)
