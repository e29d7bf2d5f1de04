"""Every failure talking to a REST API becomes a TransientError or a PermanentError here, and only here, with the
classification every HTTP connector shares (:mod:`syncfabric.connectors.http`):

    httpx.TimeoutException, httpx.NetworkError,   ─► TransientError  (retried with backoff, honouring Retry-After)
    httpx.RemoteProtocolError,
    408, 425, 429, 5xx (except 501, 505)
    401, 403, other 4xx, 501, 505, other httpx   ─► PermanentError  (credentials, request or configuration wrong)
    an answer that is not JSON, or holds no list
    of records where the endpoint says
"""

from __future__ import annotations

import httpx

from syncfabric.connectors.http import translate_http_error
from syncfabric.errors import ConnectorError, PermanentError


def translate_error(problem: httpx.HTTPError | httpx.Response, *, system: str, entity: str = "") -> ConnectorError:
    """The error to raise for a failed request (``problem`` is the httpx error) or an unsuccessful response."""
    return translate_http_error(problem, what="REST API", system=system, entity=entity)


def bad_answer(message: str, response: httpx.Response, *, system: str, entity: str) -> PermanentError:
    """An answer the connector cannot read, located by its URL."""
    return PermanentError(f"{message} (GET {response.request.url})", system=system, entity=entity)
