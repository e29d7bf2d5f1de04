"""A simulated paged JSON API, the kind supplier portals, logistics and SaaS tools offer, with all three paging
styles over the same collections.

Business API (bearer token or basic credentials required when the app is created with them):

- ``GET /api/v1/offset/<collection>?limit=&offset=`` → ``{"data": {"records": [...]}, "total": N}``
- ``GET /api/v1/cursor/<collection>?page_size=&cursor=`` → ``{"items": [...], "next_cursor": TOKEN | null}``;
  the token is opaque and names the last record served, so records added meanwhile are not skipped.
- ``GET /api/v1/link/<collection>?per_page=&page=`` → a JSON list, and ``Link: <url>; rel="next"`` (RFC 8288)
  while there are more pages.

Writes: ``PUT /api/v1/records/<collection>/<id>`` stores a JSON object as the record of that id (idempotent: the
same body again changes nothing but ``updated_at``); a record lacking a field the collection requires is refused
with 422 and a ``detail`` naming it. ``DELETE /api/v1/records/<collection>/<id>`` removes it (404 if absent).

Every listing takes ``?updated_since=<ISO date-time>`` (records whose ``updated_at`` is at or after it, in
``updated_at`` then ``id`` order; otherwise in ``id`` order).

Sandbox control surface (never authenticated; no faults apply to it), under ``/api/_sandbox/``:
``PUT records/<collection>`` upserts records (a list; ``updated_at`` is set to now unless given),
``DELETE records/<collection>/<id>``, ``POST junk/<collection>`` (entries that are not records, a list, served
at the end of full listings), ``POST page-cap?cap=N`` (serve at most N records per page, silently),
``POST required/<collection>`` (a list of fields its written records must have),
``GET requests`` (business requests served, by path), ``GET|POST faults``
(latency, a run of failing responses with ``Retry-After``, outage; see :mod:`.faults`), ``POST reset``.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import threading
from collections import Counter
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response

from syncfabric.sandbox.faults import Faults, faults_router, install_faults

SANDBOX_PREFIX = "/api/_sandbox"
MAX_PAGE = 1000


class RestState:
    """The collections of records, by id; thread-safe because uvicorn serves from its own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.collections: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests: Counter[str] = Counter()
        self.page_cap: int | None = None
        """Serve at most this many records per page, whatever the client asks (as many APIs do, silently)."""
        self.junk: dict[str, list[Any]] = {}
        """Entries that are not records (a number, a text), served at the end of a full listing: bad input."""
        self.required: dict[str, list[str]] = {}
        """Fields a record written through the business API must have, per collection."""

    def upsert(self, collection: str, records: list[dict[str, Any]]) -> None:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with self._lock:
            stored = self.collections.setdefault(collection, {})
            for record in records:
                stored[str(record["id"])] = {**record, "id": str(record["id"]), "updated_at":
                                             record.get("updated_at") or now}

    def delete(self, collection: str, record_id: str) -> bool:
        with self._lock:
            return self.collections.get(collection, {}).pop(record_id, None) is not None

    def listing(self, collection: str, updated_since: str | None) -> list[dict[str, Any]]:
        with self._lock:
            if collection not in self.collections:
                raise HTTPException(404, f"no collection {collection!r}")
            rows = list(self.collections[collection].values())
        if updated_since is None:
            return [*sorted(rows, key=lambda row: row["id"]), *self.junk.get(collection, [])]
        since = _instant(updated_since)
        chosen = [row for row in rows if _instant(row["updated_at"]) >= since]
        return sorted(chosen, key=lambda row: (_instant(row["updated_at"]), row["id"]))

    def capped(self, size: int) -> int:
        return min(size, self.page_cap) if self.page_cap else size

    def reset(self) -> None:
        with self._lock:
            self.collections.clear()
            self.requests.clear()
            self.junk.clear()
            self.required.clear()
            self.page_cap = None


def create_app(token: str | None = None, basic: tuple[str, str] | None = None) -> FastAPI:
    """The API as an ASGI app; with ``token`` it wants ``Authorization: Bearer <token>``, with ``basic`` it wants
    that user name and password."""
    state, faults = RestState(), Faults()
    app = FastAPI(title="Paged REST API (sandbox)", version="1")
    app.state.rest = state
    app.state.faults = faults
    install_faults(app, faults, applies_to=lambda path: path.startswith("/api/v1/"))
    app.include_router(_control_router(state, faults), prefix=SANDBOX_PREFIX)
    app.include_router(_business_router(state, token, basic), prefix="/api/v1")
    return app


def _business_router(state: RestState, token: str | None, basic: tuple[str, str] | None) -> APIRouter:
    def authenticate(request: Request) -> None:
        state.requests[request.url.path] += 1
        if token is None and basic is None:
            return
        given = request.headers.get("Authorization", "")
        if token is not None and secrets.compare_digest(given, f"Bearer {token}"):
            return
        if basic is not None:
            expected = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
            if secrets.compare_digest(given, expected):
                return
        raise HTTPException(401, "missing or wrong credentials", headers={"WWW-Authenticate": "Bearer"})

    router = APIRouter(dependencies=[Depends(authenticate)])

    @router.get("/offset/{collection}")
    def by_offset(collection: str, limit: int = Query(100, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0),
                  updated_since: str | None = None) -> dict[str, Any]:
        rows = state.listing(collection, _checked(updated_since))
        return {"data": {"records": rows[offset:offset + state.capped(limit)]}, "total": len(rows)}

    @router.get("/cursor/{collection}")
    def by_cursor(collection: str, page_size: int = Query(100, ge=1, le=MAX_PAGE), cursor: str | None = None,
                  updated_since: str | None = None) -> dict[str, Any]:
        rows = state.listing(collection, _checked(updated_since))
        page_size = state.capped(page_size)
        start = 0
        if cursor:
            position = _decode_token(cursor)
            start = next((i for i, row in enumerate(rows) if _position(row, updated_since) > position), len(rows))
        page = rows[start:start + page_size]
        more = start + page_size < len(rows)
        return {"items": page, "next_cursor": _encode_token(_position(page[-1], updated_since)) if more else None}

    @router.get("/link/{collection}")
    def by_link(request: Request, response: Response, collection: str,
                per_page: int = Query(100, ge=1, le=MAX_PAGE), page: int = Query(1, ge=1),
                updated_since: str | None = None) -> list[dict[str, Any]]:
        rows = state.listing(collection, _checked(updated_since))
        per_page = state.capped(per_page)
        chosen = rows[(page - 1) * per_page:page * per_page]
        links = []
        if page * per_page < len(rows):
            links.append(f'<{request.url.include_query_params(page=page + 1)}>; rel="next"')
        links.append(f'<{request.url.include_query_params(page=1)}>; rel="first"')
        response.headers["Link"] = ", ".join(links)
        return chosen

    @router.put("/records/{collection}/{record_id}")
    def write_record(collection: str, record_id: str, record: dict[str, Any]) -> dict[str, str]:
        missing = [name for name in state.required.get(collection, []) if record.get(name) in (None, "")]
        if missing:
            raise HTTPException(422, f"missing field {', '.join(map(repr, missing))} in {collection} {record_id}")
        state.upsert(collection, [{**record, "id": record_id, "updated_at": None}])
        return {"id": record_id}

    @router.delete("/records/{collection}/{record_id}")
    def remove_record(collection: str, record_id: str) -> dict[str, str]:
        if not state.delete(collection, record_id):
            raise HTTPException(404, f"no {collection} {record_id}")
        return {"deleted": record_id}

    return router


def _control_router(state: RestState, faults: Faults) -> APIRouter:
    router = APIRouter()

    @router.put("/records/{collection}")
    def put_records(collection: str, records: list[dict[str, Any]]) -> dict[str, int]:
        if any("id" not in record for record in records):
            raise HTTPException(422, "every record needs an id")
        state.upsert(collection, records)
        return {"stored": len(records)}

    @router.delete("/records/{collection}/{record_id}")
    def delete_record(collection: str, record_id: str) -> dict[str, bool]:
        return {"deleted": state.delete(collection, record_id)}

    @router.post("/junk/{collection}")
    def add_junk(collection: str, entries: list[Any]) -> dict[str, int]:
        state.junk.setdefault(collection, []).extend(entries)
        return {"junk": len(state.junk[collection])}

    @router.post("/required/{collection}")
    def set_required(collection: str, fields: list[str]) -> dict[str, list[str]]:
        state.required[collection] = fields
        return {"required": fields}

    @router.post("/page-cap")
    def set_page_cap(cap: int | None = None) -> dict[str, int | None]:
        state.page_cap = cap
        return {"page_cap": cap}

    @router.get("/requests")
    def requests() -> dict[str, int]:
        return dict(state.requests)

    @router.post("/reset")
    def reset() -> dict[str, str]:
        state.reset()
        faults.clear()
        return {"status": "reset"}

    router.include_router(faults_router(faults))
    return router


def _instant(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _checked(updated_since: str | None) -> str | None:
    if updated_since is not None:
        try:
            _instant(updated_since)
        except ValueError:
            raise HTTPException(400, f"updated_since is not an ISO 8601 date-time: {updated_since!r}") from None
    return updated_since


def _position(row: Any, updated_since: str | None) -> tuple[str, str]:
    if not isinstance(row, dict):
        return "\uffff", str(row)  # junk sorts after every record
    stamp = _instant(row["updated_at"]).isoformat() if updated_since is not None else ""
    return stamp, row["id"]


def _encode_token(position: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode("\x1f".join(position).encode()).decode()


def _decode_token(token: str) -> tuple[str, str]:
    try:
        stamp, _, record_id = base64.urlsafe_b64decode(token.encode()).decode().partition("\x1f")
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "invalid cursor") from None
    return stamp, record_id
