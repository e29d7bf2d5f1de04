"""A small OData v2 client over httpx: JSON reads with server-driven paging, CSRF-protected writes, retries.

Why not a general OData library: pyodata (the maintained Python OData v2 client) builds its model from the
service's full ``$metadata`` with lxml and sends requests through a requests-style session. We need only a few
protocol features (query options, ``__next`` links, ``x-csrf-token`` handling, deep insert), and need them on our
own httpx client so that the per-system limits (:mod:`syncfabric.connectors.limits`), timeouts and error
translation apply to every request, and so that a system whose metadata is large or carries annotations the
library cannot parse still works. This module is that protocol, kept small and explicit.
"""

from __future__ import annotations

from typing import Any

import httpx

from syncfabric.connectors.http import http_client
from syncfabric.connectors.odata.configuration import ODataConfig
from syncfabric.connectors.odata.exceptions import is_csrf_failure, translate_error
from syncfabric.errors import PermanentError
from syncfabric.flows.retry import RetryPolicy, call_with_retry


class ODataClient:
    def __init__(self, system: str, config: ODataConfig, user: str | None, password: str | None) -> None:
        self.system = system
        self.config = config
        self.root = config.service_root.rstrip("/")
        self.base_url = config.base_url.rstrip("/")
        self.http = http_client(system, self.base_url, timeout=config.timeout_seconds, verify=config.verify_tls,
                                limits=config.limits, auth=(user, password or "") if user else None)
        self.retry = RetryPolicy(max_attempts=config.retry.max_attempts, base_delay=config.retry.base_delay,
                                 max_delay=config.retry.max_delay)
        self._tokens: dict[str, str] = {}

    def close(self) -> None:
        self.http.close()

    def service_url(self, service: str, path: str = "") -> str:
        return f"{self.root}/{service}/{path}"

    def relative(self, url: str) -> str:
        """A ``__next`` link as a path on our base URL, so cursors do not depend on how the host was spelled."""
        return url[len(self.base_url):] if url.startswith(self.base_url) else url

    def _params(self, params: dict[str, str] | None) -> dict[str, str]:
        out = dict(params or {})
        if self.config.sap_client:
            out.setdefault("sap-client", self.config.sap_client)
        return out

    def get(self, url: str, params: dict[str, str] | None = None, *, entity: str = "", key: str = "",
            headers: dict[str, str] | None = None) -> httpx.Response:
        """A GET, retried on transient failures; any unsuccessful answer raises the translated error."""
        query = self._params(params) if params is not None or "?" not in url else None

        def attempt() -> httpx.Response:
            try:
                response = self.http.get(url, params=query, headers=headers)
            except httpx.HTTPError as exc:
                raise translate_error(exc, system=self.system, entity=entity, key=key) from exc
            if response.status_code != 200:
                raise translate_error(response, system=self.system, entity=entity, key=key)
            return response

        return call_with_retry(attempt, self.retry)

    def json(self, url: str, params: dict[str, str] | None = None, *, entity: str = "") -> dict[str, Any]:
        response = self.get(url, params, entity=entity)
        try:
            body = response.json()["d"]
        except (ValueError, KeyError, TypeError):
            raise PermanentError(f"SAP answered without an OData v2 JSON body (d): {response.text[:200]!r}",
                                 system=self.system, entity=entity) from None
        if not isinstance(body, dict):
            raise PermanentError("SAP answered an OData body that is not an object", system=self.system,
                                 entity=entity)
        return body

    def fetch_token(self, service: str) -> str:
        """A CSRF token for writes to ``service``, bound to this client's session cookie."""
        response = self.get(self.service_url(service), {}, entity=service, headers={"x-csrf-token": "fetch"})
        token = response.headers.get("x-csrf-token")
        if not token:
            raise PermanentError(f"SAP did not hand out a CSRF token for {service}", system=self.system,
                                 entity=service)
        self._tokens[service] = token
        return token

    def modify(self, method: str, service: str, path: str, body: dict[str, Any], *, entity: str = "",
               key: str = "") -> httpx.Response:
        """A POST/PATCH with the service's CSRF token (fetched when missing, fetched again once when SAP refuses
        it, as after a session timeout). Returns the response, successful or not, for the caller to judge per
        record; transport failures raise the translated error. Not retried here: the caller decides whether
        sending again is safe."""
        for attempt in (1, 2):
            token = self._tokens.get(service) or self.fetch_token(service)
            try:
                response = self.http.request(method, self.service_url(service, path), json=body,
                                             params=self._params({}), headers={"x-csrf-token": token})
            except httpx.HTTPError as exc:
                raise translate_error(exc, system=self.system, entity=entity, key=key) from exc
            if not is_csrf_failure(response):
                return response
            self._tokens.pop(service, None)
            if attempt == 2:
                raise PermanentError("SAP refused a freshly fetched CSRF token: CSRF token validation failed",
                                     system=self.system, entity=entity, key=key)
        raise AssertionError("unreachable")
