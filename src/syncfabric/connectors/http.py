"""What every connector that speaks HTTP shares: its client, made on first use, and one classification of failures.

:class:`ClientConnector` holds a connector's client (an :func:`http_client` or a protocol client built on one): made
by ``open`` or the first use of ``client``, closed by ``close``, made again on the next use.

Failures become TransientError or PermanentError:

    httpx.TimeoutException, httpx.NetworkError,   ─► TransientError  (retry; ``retry_after`` from the header)
    httpx.RemoteProtocolError,
    408, 425, 429, 5xx (except 501, 505)
    401, 403, other 4xx, 501, 505, other httpx   ─► PermanentError  (credentials, request or configuration wrong)

Each connector package's ``exceptions.py`` calls :func:`translate_http_error` with the name of its system (and, for
a system whose error bodies have a shape of their own, how to read them).
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import httpx

from syncfabric.connectors.base import Connector
from syncfabric.connectors.limits import Limits, limited_transport
from syncfabric.errors import ConnectorError, PermanentError, TransientError


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class ClientConnector(Connector, Generic[C]):
    """A connector that talks to its system through one client; subclasses say how to make it (``make_client``)."""

    _client: C | None = None

    def make_client(self) -> C:
        raise NotImplementedError

    def open(self) -> None:
        if self._client is None:
            self._client = self.make_client()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def client(self) -> C:
        self.open()
        assert self._client is not None
        return self._client


def http_client(system: str, base_url: str, *, timeout: float, verify: bool = True, limits: Limits | None = None,
                headers: dict[str, str] | None = None, auth: Any = None) -> httpx.Client:
    """An httpx client for one system: JSON accepted, paths relative to ``base_url`` (a trailing ``/`` dropped),
    the connection's timeout and TLS check, and its request ``limits`` (:mod:`.limits`) on every request."""
    return httpx.Client(base_url=base_url.rstrip("/"), headers={"Accept": "application/json", **(headers or {})},
                        auth=auth, timeout=timeout, verify=verify,
                        transport=limited_transport(system, limits, verify=verify))


_RETRYABLE_STATUS = frozenset({408, 425, 429})
_FINAL_SERVER_STATUS = frozenset({501, 505})


def translate_http_error(
    problem: httpx.HTTPError | httpx.Response, *, what: str, system: str, entity: str = "", key: str = "",
    detail: Callable[[httpx.Response], str] | None = None,
) -> ConnectorError:
    """The error to raise for a failed request (``problem`` is the httpx error) or an unsuccessful response;
    ``what`` names the other side in the message ("planning platform", "REST API"); ``detail`` reads what an
    unsuccessful answer says (default: its JSON ``detail``, or the start of its body)."""
    if isinstance(problem, httpx.Response):
        status = problem.status_code
        message = f"{what} answered {status} {problem.reason_phrase}: {(detail or _detail)(problem)}"
        if status in _RETRYABLE_STATUS or (status >= 500 and status not in _FINAL_SERVER_STATUS):
            return TransientError(message, retry_after=retry_after(problem), system=system, entity=entity, key=key)
        return PermanentError(message, system=system, entity=entity, key=key)
    if isinstance(problem, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        message = f"{what} unreachable: {type(problem).__name__}: {problem}"
        return TransientError(message, system=system, entity=entity, key=key)
    message = f"request to {what} failed: {type(problem).__name__}: {problem}"
    return PermanentError(message, system=system, entity=entity, key=key)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from ``Retry-After`` (delay in seconds or an HTTP date), None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or "(no body)"
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return str(detail)[:300]
