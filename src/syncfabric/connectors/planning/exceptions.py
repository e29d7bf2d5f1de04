"""Every failure talking to the planning platform becomes a TransientError or a PermanentError here, and only here.

    httpx.TimeoutException, httpx.NetworkError,   ─► TransientError  (retry; ``retry_after`` from the header)
    httpx.RemoteProtocolError,
    408, 425, 429, 5xx (except 501, 505)
    401, 403, other 4xx, 501, 505, other httpx   ─► PermanentError  (credentials, request or configuration wrong)
"""

from __future__ import annotations

import httpx

from syncfabric.connectors.http import retry_after
from syncfabric.errors import ConnectorError, PermanentError, TransientError

__all__ = ["retry_after", "translate_error"]

_RETRYABLE_STATUS = frozenset({408, 425, 429})
_FINAL_SERVER_STATUS = frozenset({501, 505})


def translate_error(
    problem: httpx.HTTPError | httpx.Response, *, system: str, entity: str = "", key: str = ""
) -> ConnectorError:
    """The error to raise for a failed request (``problem`` is the httpx error) or an unsuccessful response."""
    if isinstance(problem, httpx.Response):
        status = problem.status_code
        message = f"planning platform answered {status} {problem.reason_phrase}: {_detail(problem)}"
        if status in _RETRYABLE_STATUS or (status >= 500 and status not in _FINAL_SERVER_STATUS):
            return TransientError(message, retry_after=retry_after(problem), system=system, entity=entity, key=key)
        return PermanentError(message, system=system, entity=entity, key=key)
    if isinstance(problem, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        message = f"planning platform unreachable: {type(problem).__name__}: {problem}"
        return TransientError(message, system=system, entity=entity, key=key)
    message = f"request to planning platform failed: {type(problem).__name__}: {problem}"
    return PermanentError(message, system=system, entity=entity, key=key)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or "(no body)"
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return str(detail)[:300]
