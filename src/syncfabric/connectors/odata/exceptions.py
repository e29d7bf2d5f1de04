"""Every failure talking to an SAP OData service becomes a TransientError or a PermanentError here, and only here,
with the classification every HTTP connector shares (:mod:`syncfabric.connectors.http`):

    httpx.TimeoutException, httpx.NetworkError,     ─► TransientError  (retried; ``retry_after`` from the header)
    httpx.RemoteProtocolError, 408, 425, 429,
    5xx (except 501, 505)
    401, 403, other 4xx, 501, 505, other httpx      ─► PermanentError  carrying SAP's error code and message
                                                                      (``{"error": {"code", "message": {"value"}}}``)
"""

from __future__ import annotations

import httpx

from syncfabric.connectors.http import translate_http_error
from syncfabric.errors import ConnectorError

CSRF_FAILED = "CSRF token validation failed"


def is_csrf_failure(response: httpx.Response) -> bool:
    return response.status_code == 403 and (
        response.headers.get("x-csrf-token", "").lower() == "required" or CSRF_FAILED in response.text)


def translate_error(
    problem: httpx.HTTPError | httpx.Response, *, system: str, entity: str = "", key: str = ""
) -> ConnectorError:
    """The error to raise for a failed request (``problem`` is the httpx error) or an unsuccessful response."""
    return translate_http_error(problem, what="SAP", system=system, entity=entity, key=key, detail=sap_message)


def sap_message(response: httpx.Response) -> str:
    """SAP's error code and text from an OData error body (``[ME/062] Material ...``), else the body's start."""
    try:
        body = response.json()
        error = body["error"]
        value = error["message"]["value"] if isinstance(error.get("message"), dict) else error.get("message")
        return f"[{error.get('code', '')}] {value}"
    except (ValueError, KeyError, TypeError, AttributeError):
        return response.text[:300].strip() or "(no body)"
