"""Per-system request quotas and concurrency limits, so that a sync never overloads an ERP.

A system's connection may carry a ``limits`` block (any connector whose configuration embeds :class:`Limits`)::

    systems:
      s4-eu:
        kind: odata
        connection:
          base_url: https://s4.example.com
          limits: {requests_per_second: 5, max_concurrent: 2}

Every connector of that system in the process shares one :class:`Limiter` (``limiter_for(system, limits)``), so
two flows of the same system running at once stay under its limits together. An httpx-based connector applies it
by building its client with :func:`syncfabric.connectors.http.http_client` (which uses :func:`limited_transport`)::

    client = http_client(self.system, self.config.base_url, timeout=..., limits=self.config.limits)

Each request then waits for a rate token and a concurrency slot before it is sent, and gives the slot back when
its response has been read (or closed). Other clients call ``with limiter.slot(): ...`` around each request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import httpx
import msgspec


class Limits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How hard syncfabric may use one system."""

    requests_per_second: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """Most requests started per second, across every flow of the system in this process; none: unlimited."""
    burst: Annotated[int, msgspec.Meta(ge=1)] = 1
    """Requests that may start back to back after a quiet spell before the rate applies (token bucket size)."""
    max_concurrent: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """Most requests in flight at once, across every flow of the system in this process; none: unlimited."""


class Limiter:
    """A token bucket (rate) and a semaphore (concurrency), both thread-safe."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._tokens = float(limits.burst)
        self._stamp = time.monotonic()
        self._slots = threading.BoundedSemaphore(limits.max_concurrent) if limits.max_concurrent else None

    def wait_for_token(self) -> None:
        rate = self.limits.requests_per_second
        if rate is None:
            return
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(float(self.limits.burst), self._tokens + (now - self._stamp) * rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / rate
            time.sleep(wait)

    def acquire(self) -> None:
        """Take a concurrency slot, then a rate token (in this order, so a waiting request holds no token)."""
        if self._slots is not None:
            self._slots.acquire()
        self.wait_for_token()

    def release(self) -> None:
        if self._slots is not None:
            self._slots.release()

    @contextmanager
    def slot(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


_shared: dict[tuple[str, Limits], Limiter] = {}
_shared_lock = threading.Lock()


def limiter_for(system: str, limits: Limits) -> Limiter:
    """The process-wide limiter of a system (one per system and limits)."""
    with _shared_lock:
        key = (system, limits)
        if key not in _shared:
            _shared[key] = Limiter(limits)
        return _shared[key]


class _ReleasingStream(httpx.SyncByteStream):
    def __init__(self, stream: httpx.SyncByteStream, release: threading.Event, limiter: Limiter) -> None:
        self._stream, self._released, self._limiter = stream, release, limiter

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            if not self._released.is_set():
                self._released.set()
                self._limiter.release()


class LimitedTransport(httpx.BaseTransport):
    """An httpx transport that sends each request through a :class:`Limiter`."""

    def __init__(self, limiter: Limiter, transport: httpx.BaseTransport | None = None) -> None:
        self.limiter = limiter
        self.transport = transport or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.limiter.acquire()
        try:
            response = self.transport.handle_request(request)
        except BaseException:
            self.limiter.release()
            raise
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _ReleasingStream(response.stream, threading.Event(), self.limiter)
        return response

    def close(self) -> None:
        self.transport.close()


def limited_transport(system: str, limits: Limits | None, **transport_options: object) -> httpx.BaseTransport:
    """The transport for a system's httpx client: limited when ``limits`` says so, plain otherwise.
    ``transport_options`` go to :class:`httpx.HTTPTransport` (``verify``, ``retries``, ...)."""
    transport = httpx.HTTPTransport(**transport_options)  # type: ignore[arg-type]
    if limits is None or (limits.requests_per_second is None and limits.max_concurrent is None):
        return transport
    return LimitedTransport(limiter_for(system, limits), transport)
