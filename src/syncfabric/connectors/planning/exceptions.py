"""Every failure talking to the planning platform becomes a TransientError or a PermanentError here, and only here,
with the classification every HTTP connector shares (:mod:`syncfabric.connectors.http`):

    httpx.TimeoutException, httpx.NetworkError,   ─► TransientError  (retry; ``retry_after`` from the header)
    httpx.RemoteProtocolError,
    408, 425, 429, 5xx (except 501, 505)
    401, 403, other 4xx, 501, 505, other httpx   ─► PermanentError  (credentials, request or configuration wrong)
"""

from __future__ import annotations

import httpx

from syncfabric.connectors.http import retry_after, translate_http_error
from syncfabric.errors import ConnectorError

__all__ = ["retry_after", "translate_error"]


def translate_error(
    problem: httpx.HTTPError | httpx.Response, *, system: str, entity: str = "", key: str = ""
) -> ConnectorError:
    """The error to raise for a failed request (``problem`` is the httpx error) or an unsuccessful response."""
    return translate_http_error(problem, what="planning platform", system=system, entity=entity, key=key)
