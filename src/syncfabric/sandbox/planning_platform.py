"""A simulated supply chain planning platform, modelled on frePPLe's REST planning input.

Business API (bearer token required when the app is created with one):

- ``GET /api/<app>/<entity>/`` lists records in key order; ``?limit=&offset=`` pages, ``?<field>=value``,
  ``?<field>__in=a,b`` and ``?<field>__contains=text`` filter, ``?lastmodified__gte=<ISO timestamp>`` (also
  ``__gt``, ``__lte``, ``__lt``) selects recent changes.
  The total before paging is in the ``X-Total-Count`` header.
- ``POST`` creates, ``PUT`` upserts, ``PATCH`` updates existing records; ``DELETE`` deletes by key. Each takes a
  JSON list of records (or one record). Writes merge: fields given replace, others are kept.
- The answer lists one outcome per record, in order: ``{"results": [{"index", "key", "status": "ok"|"error",
  "effect" | "error"}]}`` with status 200 when every record is ok and 207 otherwise. A bad record is rejected
  alone; the others are applied.

Entities and their fields are in :mod:`~syncfabric.sandbox.planning_entities`; versioned, idempotent writes are
explained in :mod:`~syncfabric.sandbox.planning_state`.

Sandbox control surface (never authenticated; no faults apply to it), under ``/api/_sandbox/``:
``GET received`` (write requests and per-entity outcomes), ``GET journal`` (every versioned record outcome, in
the order applied), ``POST plan?today=YYYY-MM-DD`` (run the material requirements netting of
:mod:`~syncfabric.sandbox.planning_mrp`; its planned orders replace the previous run's under
``GET /api/output/plannedorder/``), ``GET|POST faults`` (latency, failing responses,
outage), ``POST reset`` (empty the platform and clear faults).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from syncfabric.sandbox.faults import Faults, faults_router, install_faults
from syncfabric.sandbox.planning_entities import ENTITIES, EntitySpec
from syncfabric.sandbox.planning_mrp import run_mrp
from syncfabric.sandbox.planning_state import PlanningState, WriteMode

SANDBOX_PREFIX = "/api/_sandbox"
_MODES: dict[str, WriteMode] = {"POST": "create", "PUT": "upsert", "PATCH": "update"}


def create_app(token: str | None = None, state_file: Path | None = None) -> FastAPI:
    """The planning platform as an ASGI app. With ``state_file`` its records survive restarts."""
    state = PlanningState(state_file)
    faults = Faults()
    app = FastAPI(title="Planning platform (sandbox)", version="1")
    app.state.planning = state
    app.state.faults = faults
    install_faults(app, faults, applies_to=_is_business_path)
    app.include_router(_control_router(state, faults), prefix=SANDBOX_PREFIX)
    app.include_router(_input_router(state, token, faults))
    return app


def _is_business_path(path: str) -> bool:
    return path.startswith("/api/") and not path.startswith(SANDBOX_PREFIX + "/")


def _input_router(state: PlanningState, token: str | None, faults: Faults) -> APIRouter:
    def authenticate(request: Request) -> None:
        if token is None:
            return
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token.encode()):
            raise HTTPException(401, "Authentication credentials were not provided or are invalid.",
                                headers={"WWW-Authenticate": "Bearer"})

    router = APIRouter(dependencies=[Depends(authenticate)])

    @router.get("/api/{app_name}/{entity}/")
    def list_records(
        app_name: str, entity: str, request: Request,
        limit: int | None = Query(None, ge=1), offset: int = Query(0, ge=0),
    ) -> JSONResponse:
        spec = _spec(app_name, entity)
        filters = {k: v for k, v in request.query_params.items() if k not in ("limit", "offset")}
        try:
            rows = state.query(spec, filters)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        page = rows[offset:] if limit is None else rows[offset:offset + limit]
        return JSONResponse(page, headers={"X-Total-Count": str(len(rows))})

    @router.api_route("/api/{app_name}/{entity}/", methods=["POST", "PUT", "PATCH", "DELETE"])
    async def write_records(app_name: str, entity: str, request: Request) -> JSONResponse:
        spec = _spec(app_name, entity)
        items = _records(await request.body())
        refuse = frozenset(faults.reject_keys)
        if request.method == "DELETE":
            results = state.delete(spec, items, refuse=refuse)
        else:
            results = state.write(spec, items, _MODES[request.method], refuse=refuse)
        status = 200 if all(r["status"] == "ok" for r in results) else 207
        return JSONResponse({"results": results}, status_code=status)

    return router


def _control_router(state: PlanningState, faults: Faults) -> APIRouter:
    router = APIRouter()
    router.include_router(faults_router(faults))

    @router.get("/received")
    def received() -> dict[str, Any]:
        return {**state.received(), "faults_injected": faults.injected}

    @router.post("/plan")
    def plan(today: str | None = None) -> dict[str, Any]:
        try:
            day = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.UTC).date()
        except ValueError:
            raise HTTPException(400, f"today is not an ISO date: {today!r}") from None
        return run_plan(state, day)

    @router.get("/journal")
    def journal() -> list[dict[str, Any]]:
        return state.journal_entries()

    @router.post("/reset")
    def reset() -> dict[str, str]:
        state.reset()
        faults.clear()
        return {"status": "reset"}

    return router


def _spec(app_name: str, entity: str) -> EntitySpec:
    spec = ENTITIES.get(entity)
    if spec is None or app_name not in spec.apps:
        raise HTTPException(404, f"no such entity: /api/{app_name}/{entity}/")
    return spec


def _records(body: bytes) -> list[Any]:
    try:
        document = json.loads(body) if body else None
    except ValueError as exc:
        raise HTTPException(400, f"body is not JSON: {exc}") from None
    if isinstance(document, dict):
        return [document]
    if isinstance(document, list):
        return document
    raise HTTPException(400, "body must be a JSON list of records (or one record)")


def run_plan(state: PlanningState, today: dt.date) -> dict[str, Any]:
    """Run the netting and publish its planned orders: new and changed ones upserted, those no longer needed
    deleted; a rerun on the same data changes nothing."""
    spec = ENTITIES["plannedorder"]
    result = run_mrp(state, today=today)
    keep = {order["reference"] for order in result.planned}
    gone = [{"reference": row["reference"]} for row in state.query(spec, {}) if row["reference"] not in keep]
    written = state.write(spec, result.planned, "upsert") if result.planned else []
    if gone:
        state.delete(spec, gone)
    errors = [outcome for outcome in written if outcome["status"] != "ok"]
    return {"planned": len(result.planned), "withdrawn": len(gone), "unsourced": result.unsourced,
            "errors": errors}
