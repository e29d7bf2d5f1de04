"""Fault injection shared by the simulated systems: latency, a run of failing responses, a full outage.

A simulated system keeps one :class:`Faults`, installs :func:`install_faults` as middleware over the paths that
model its business API, and mounts :func:`faults_router` under its sandbox control surface. Tests and the demo turn
the knobs over HTTP (``POST /api/_sandbox/faults``) exactly as an operator would break a real system.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field


@dataclass
class Faults:
    """The current fault knobs of one simulated system."""

    latency_ms: int = 0
    """Added to every business request before it is handled."""
    fail_next_n: int = 0
    """The next N business requests fail with ``fail_status`` (counted down)."""
    fail_status: int = 503
    """Status of the injected failures: 429, 500, 502, 503, 504, ..."""
    retry_after: float | None = None
    """If set, injected failures carry ``Retry-After`` with this many seconds."""
    outage: bool = False
    """While on, every business request fails with 503 (and ``Retry-After`` when set)."""
    injected: int = 0
    """How many responses were failed on purpose so far."""
    reject_keys: list[str] = field(default_factory=list)
    """Records with these keys (key fields joined by ``/``) are rejected one by one, with a per-record error, by
    systems that answer per record; the rest of their requests goes through."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def next_failure(self) -> int | None:
        """The status to fail the current request with, or None to let it through."""
        with self._lock:
            if self.outage:
                self.injected += 1
                return 503
            if self.fail_next_n > 0:
                self.fail_next_n -= 1
                self.injected += 1
                return self.fail_status
            return None

    def update(self, **knobs: Any) -> None:
        with self._lock:
            for name, value in knobs.items():
                setattr(self, name, value)

    def clear(self) -> None:
        self.update(latency_ms=0, fail_next_n=0, fail_status=503, retry_after=None, outage=False, injected=0,
                    reject_keys=[])

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return asdict(self)


class FaultSettings(BaseModel):
    """Body of ``POST /faults``: only the knobs given change."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int | None = Field(default=None, ge=0, le=600_000)
    fail_next_n: int | None = Field(default=None, ge=0)
    fail_status: int | None = Field(default=None, ge=400, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    outage: bool | None = None
    reject_keys: list[str] | None = None


def install_faults(app: FastAPI, faults: Faults, applies_to: Callable[[str], bool]) -> None:
    """Apply ``faults`` to every request whose path ``applies_to`` accepts."""

    @app.middleware("http")
    async def inject(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not applies_to(request.url.path):
            return await call_next(request)
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        status = faults.next_failure()
        if status is None:
            return await call_next(request)
        headers = {"Retry-After": _seconds(faults.retry_after)} if faults.retry_after is not None else {}
        return JSONResponse({"detail": f"injected fault: status {status}"}, status_code=status, headers=headers)


def faults_router(faults: Faults) -> APIRouter:
    """``GET /faults`` shows the knobs; ``POST /faults`` changes the ones given."""
    router = APIRouter()

    @router.get("/faults")
    def show() -> dict[str, Any]:
        return faults.snapshot()

    @router.post("/faults")
    def change(settings: FaultSettings) -> dict[str, Any]:
        faults.update(**{name: getattr(settings, name) for name in settings.model_fields_set})
        return faults.snapshot()

    return router


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
