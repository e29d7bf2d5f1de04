"""An SAP S/4HANA system as its OData v2 APIs show it, for tests and the demo.

Business API under ``/sap/opu/odata/sap/<SERVICE>/`` (basic auth when created with users):

- ``$metadata`` (EDMX generated from :mod:`.entities`), the service document, entity sets, single entities by key
  (``A_Product('FG1004')``, ``A_ProductPlant(Product='FG1004',Plant='1010')``) and navigation from an entity
  (``A_PurchaseOrder('4500000001')/to_PurchaseOrderItem``).
- Query options ``$filter``, ``$select``, ``$expand`` (nested: ``to_Plant/to_ProductSupplyPlanning``),
  ``$orderby``, ``$top``, ``$skip``, ``$inlinecount=allpages``; server-driven paging of ``page_size`` rows with a
  ``__next`` link carrying ``$skiptoken``. JSON only (``$format=json`` or ``Accept: application/json``), in the
  v2 shape ``{"d": {"results": [...], "__next": ...}}``; dates as ``/Date(ms)/``, decimals as text.
- Bills of material: ``MaterialBOM`` of ``API_BILL_OF_MATERIAL_SRV`` (production BOMs of the finished products
  made in a plant), items through ``to_BillOfMaterialItem``.
- ``POST A_PurchaseOrder`` creates a purchase order with its items and schedule lines (deep insert);
  ``POST A_PlannedOrder`` (``API_PRODUCTION_ORDER_2_SRV``) creates a planned order for in-house production
  (this system's key users added the custom field ``YY1_PlanningReference`` to it, as SAP's extensibility
  allows, for the planning platform's order id);
  ``PATCH``/``MERGE`` on a product, its descriptions or plant data changes it and stamps ``LastChangeDateTime``.
  Modifying requests need the CSRF token fetched with ``x-csrf-token: fetch`` on a GET of the same session
  (cookie); without it: 403 ``CSRF token validation failed``.
- Errors are OData error bodies: ``{"error": {"code", "message": {"lang": "en", "value"}}}``.

Sandbox control surface under ``/_sandbox/`` (no auth, no faults): ``GET|POST faults`` (429 with Retry-After, 5xx,
latency, outage; see :mod:`syncfabric.sandbox.faults`), ``POST reset``, ``GET stats`` (requests served, most
requests in flight at once, their start times), ``POST stats/reset``, ``POST csrf/expire`` (every session's token
becomes invalid, as after a session timeout), ``POST products/{product}`` (change a product's fields, as a user
in the SAP GUI would), ``POST stock`` (a goods movement) and ``POST lose_create_answers?count=N`` (the next N
purchase or planned orders are created but answered 503, as when the connection drops after SAP committed).
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from syncfabric.sandbox.faults import Faults, faults_router
from syncfabric.sandbox.faults import install_faults as _install_faults
from syncfabric.sandbox.sap_odata.entities import SETS, EntitySet
from syncfabric.sandbox.sap_odata.metadata import edmx
from syncfabric.sandbox.sap_odata.query import (
    QueryError,
    Row,
    compile_filter,
    order_key,
    sort_rows,
    to_json,
)
from syncfabric.sandbox.sap_odata.state import SapState, entity_set

ROOT = "/sap/opu/odata/sap"
SESSION_COOKIE = "SAP_SESSIONID_S4H_100"


class ODataError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(message)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": {"lang": "en", "value": message},
                      "innererror": {"transactionid": secrets.token_hex(16).upper(), "errordetails": []}}}


class Traffic:
    """Counts business requests: how many at once (the most seen), and when each started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.in_flight = 0
            self.max_in_flight = 0
            self.started: list[float] = []

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.started.append(time.monotonic())

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": len(self.started), "in_flight": self.in_flight,
                    "max_in_flight": self.max_in_flight, "started": list(self.started)}


def create_app(users: dict[str, str] | None = None, *, seed: int = 42, products: int = 40,
               page_size: int = 50) -> FastAPI:
    """The emulator as an ASGI app. ``users`` maps user name to password for basic auth (None: no auth)."""
    state = SapState(seed=seed, products=products)
    faults, traffic = Faults(), Traffic()
    sessions: dict[str, str | None] = {}
    """Session cookie → its CSRF token (None until one is fetched)."""
    lost_answers = [0]
    """The next N purchase or planned orders are created but answered 503, as when the connection drops after
    SAP's commit."""
    app = FastAPI(title="SAP S/4HANA OData v2 (sandbox)", version="1")
    app.state.sap, app.state.faults, app.state.traffic = state, faults, traffic
    _install_faults(app, faults, applies_to=lambda path: path.startswith(ROOT))

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not request.url.path.startswith(ROOT):
            return await call_next(request)
        traffic.enter()
        try:
            return await call_next(request)
        finally:
            traffic.leave()

    app.include_router(faults_router(faults), prefix="/_sandbox")
    _control(app, state, faults, traffic, sessions)

    @app.post("/_sandbox/lose_create_answers")
    def lose_create_answers(count: int = 1) -> dict[str, int]:
        lost_answers[0] = count
        return {"count": count}

    @app.exception_handler(ODataError)
    async def odata_error(request: Request, exc: ODataError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Basic realm="SAP NetWeaver Application Server [S4H/100]"'} \
            if exc.status == 401 else None
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status, headers=headers)

    def authenticate(request: Request) -> str:
        if users is None:
            return "SANDBOX"
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            user, password = "", ""
        known = users.get(user)
        if scheme.lower() != "basic" or known is None or not secrets.compare_digest(password, known):
            raise ODataError(401, "/IWFND/CM_CONSUMER/101", "Logon failed: user or password wrong")
        return user

    def session(request: Request, response: Response) -> str:
        sid = request.cookies.get(SESSION_COOKIE)
        if sid is None or sid not in sessions:
            sid = secrets.token_urlsafe(16)
            sessions[sid] = None
            response.set_cookie(SESSION_COOKIE, sid, httponly=True, path="/")
        return sid

    def check_csrf(request: Request) -> Response | None:
        sid = request.cookies.get(SESSION_COOKIE)
        given = request.headers.get("x-csrf-token", "")
        expected = sessions.get(sid or "")
        if not expected or not secrets.compare_digest(given, expected):
            return PlainTextResponse("CSRF token validation failed", status_code=403,
                                     headers={"x-csrf-token": "Required"})
        return None

    @app.get(ROOT + "/{service}/{resource:path}")
    def read(service: str, resource: str, request: Request) -> Response:
        user = authenticate(request)
        sets = _service(service)
        response = JSONResponse({})
        sid = session(request, response)
        if request.headers.get("x-csrf-token", "").lower() == "fetch":
            sessions[sid] = sessions[sid] or secrets.token_urlsafe(24)
            response.headers["x-csrf-token"] = sessions[sid] or ""
        del user
        if resource in ("", "/"):
            body: Any = {"d": {"EntitySets": list(sets)}}
        elif resource == "$metadata":
            out = Response(edmx(service, sets), media_type="application/xml")
            out.headers.update({k: v for k, v in response.headers.items() if k.lower() != "content-length"})
            return out
        else:
            _require_json(request)
            body = _get(state, service, resource, request, page_size)
        out = JSONResponse(body)
        for name, value in response.headers.items():
            if name.lower() in ("set-cookie", "x-csrf-token"):
                out.headers.append(name, value)
        return out

    @app.post(ROOT + "/{service}/{resource}")
    async def create(service: str, resource: str, request: Request) -> Response:
        user = authenticate(request)
        spec = _set(_service(service), resource)
        if refused := check_csrf(request):
            return refused
        if not spec.creatable:
            raise ODataError(405, "/IWBEP/CM_MGW_RT/021", f"Method 'CREATE_ENTITY' not implemented for {spec.name}")
        body = await _json_body(request)
        try:
            created = (state.create_planned_order(body, user) if spec.name == "A_PlannedOrder"
                       else state.create_purchase_order(body, user))
        except ValueError as exc:
            code, _, message = str(exc).partition("|")
            raise ODataError(400, code if message else "ME/000", message or code) from None
        if lost_answers[0] > 0:
            lost_answers[0] -= 1
            raise ODataError(503, "/IWFND/CM_BEC/026", "Connection to the backend system was lost")
        base = f"{str(request.base_url).rstrip('/')}{ROOT}/{service}"
        expand = "to_PurchaseOrderItem/to_ScheduleLine" if spec.name == "A_PurchaseOrder" else None
        payload = _entity(state, base, spec, created, _expand_tree(expand), None)
        return JSONResponse({"d": payload}, status_code=201,
                            headers={"Location": payload["__metadata"]["uri"]})

    @app.api_route(ROOT + "/{service}/{resource}", methods=["PATCH", "MERGE", "PUT"])
    async def change(service: str, resource: str, request: Request) -> Response:
        authenticate(request)
        sets = _service(service)
        name, key, nav = _parse_resource(resource)
        spec = _set(sets, name)
        if refused := check_csrf(request):
            return refused
        if key is None or nav or not spec.updatable:
            raise ODataError(405, "/IWBEP/CM_MGW_RT/021", f"Method 'UPDATE_ENTITY' not implemented for {name}")
        body = await _json_body(request)
        try:
            state.update(name, _key_tuple(spec, key), body)
        except KeyError:
            raise ODataError(404, "/IWBEP/CM_MGW_RT/020", f"Resource not found for segment '{resource}'") from None
        except ValueError as exc:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/004", str(exc)) from None
        return Response(status_code=204)

    return app


def _control(app: FastAPI, state: SapState, faults: Faults, traffic: Traffic,
             sessions: dict[str, str | None]) -> None:
    @app.post("/_sandbox/reset")
    def reset() -> dict[str, str]:
        state.reset()
        faults.clear()
        traffic.reset()
        sessions.clear()
        return {"status": "reset"}

    @app.get("/_sandbox/stats")
    def stats() -> dict[str, Any]:
        return traffic.snapshot()

    @app.post("/_sandbox/stats/reset")
    def stats_reset() -> dict[str, Any]:
        traffic.reset()
        return traffic.snapshot()

    @app.post("/_sandbox/csrf/expire")
    def expire() -> dict[str, int]:
        for sid in sessions:
            sessions[sid] = None
        return {"sessions": len(sessions)}

    @app.post("/_sandbox/products/{product}")
    async def change_product(product: str, request: Request) -> dict[str, Any]:
        row = state.update("A_Product", (product,), await request.json())
        return {"Product": product, "LastChangeDateTime": row["LastChangeDateTime"].isoformat()}

    @app.post("/_sandbox/stock")
    async def stock(request: Request) -> dict[str, str]:
        body = await request.json()
        state.set_stock(body["Material"], body["Plant"], Decimal(str(body["Quantity"])),
                        body.get("InventoryStockType", "01"))
        return {"status": "posted"}


# ---- reading ---------------------------------------------------------------------------------------------------


def _service(service: str) -> dict[str, EntitySet]:
    if service not in SETS:
        raise ODataError(404, "/IWFND/MED/170", f"No service found for namespace '', name '{service}', version '0001'")
    return SETS[service]


def _set(sets: dict[str, EntitySet], name: str) -> EntitySet:
    if name not in sets:
        raise ODataError(404, "/IWBEP/CM_MGW_RT/020", f"Resource not found for segment '{name}'")
    return sets[name]


def _require_json(request: Request) -> None:
    wanted = request.query_params.get("$format")
    if wanted == "json" or (wanted is None and "json" in request.headers.get("Accept", "")):
        return
    raise ODataError(406, "/IWBEP/CM_MGW_RT/000",
                     "the sandbox serves JSON only: send Accept: application/json or $format=json")


def _parse_resource(resource: str) -> tuple[str, str | None, str | None]:
    """``A_Product('X')/to_Plant`` → (A_Product, "'X'", to_Plant)."""
    head, _, nav = resource.partition("/")
    name, paren, rest = head.partition("(")
    key = unquote(rest[:-1]) if paren and rest.endswith(")") else None
    return name, key, nav or None


def _key_tuple(spec: EntitySet, text: str) -> tuple[str, ...]:
    if "=" not in text:
        if len(spec.keys) != 1:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/004", f"{spec.name} has the keys {', '.join(spec.keys)}")
        return (_quoted(text),)
    values = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        values[name.strip()] = _quoted(value.strip())
    if set(values) != set(spec.keys):
        raise ODataError(400, "/IWBEP/CM_MGW_RT/004", f"{spec.name} has the keys {', '.join(spec.keys)}")
    return tuple(values[name] for name in spec.keys)


def _quoted(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text


def _key_predicate(spec: EntitySet, row: Row) -> str:
    def lit(value: Any) -> str:
        return "'" + str(value).replace("'", "''") + "'"

    if len(spec.keys) == 1:
        return f"({quote(lit(row[spec.keys[0]]))})"
    return "(" + ",".join(f"{name}={quote(lit(row[name]))}" for name in spec.keys) + ")"


ExpandTree = dict[str, "ExpandTree"]


def _expand_tree(text: str | None) -> ExpandTree:
    tree: ExpandTree = {}
    for path in filter(None, (part.strip() for part in (text or "").split(","))):
        node = tree
        for step in path.split("/"):
            node = node.setdefault(step, {})
    return tree


def _check_expand(spec: EntitySet, tree: ExpandTree) -> None:
    for nav, sub in tree.items():
        if nav not in spec.navigation:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/005",
                             f"Property '{nav}' is no navigation property of {spec.type_name}")
        _check_expand(entity_set(spec.navigation[nav].target), sub)


def _entity(state: SapState, base: str, spec: EntitySet, row: Row, expand: ExpandTree,
            select: set[str] | None) -> dict[str, Any]:
    uri = f"{base}/{spec.name}{_key_predicate(spec, row)}"
    out: dict[str, Any] = {"__metadata": {"id": uri, "uri": uri, "type": f"{spec.service}.{spec.type_name}"}}
    for prop, edm in spec.properties.items():
        if select is None or prop in select:
            out[prop] = to_json(edm, row.get(prop))
    for nav, navigation in spec.navigation.items():
        if nav in expand:
            target = entity_set(navigation.target)
            found = state.navigate(spec.name, row, nav)
            if isinstance(found, list):
                out[nav] = {"results": [_entity(state, base, target, child, expand[nav], None) for child in found]}
            else:
                out[nav] = None if found is None else _entity(state, base, target, found, expand[nav], None)
        elif select is None or nav in select:
            out[nav] = {"__deferred": {"uri": f"{uri}/{nav}"}}
    return out


def _get(state: SapState, service: str, resource: str, request: Request, page_size: int) -> dict[str, Any]:
    sets = SETS[service]
    name, key, nav = _parse_resource(resource)
    spec = _set(sets, name)
    params = request.query_params
    base = f"{str(request.base_url).rstrip('/')}{ROOT}/{service}"
    expand = _expand_tree(params.get("$expand"))
    select = {part.strip() for part in params["$select"].split(",")} if params.get("$select") else None
    if key is not None:
        row = state.get(name, _key_tuple(spec, key))
        if row is None:
            raise ODataError(404, "/IWBEP/CM_MGW_RT/020", f"Resource not found for segment '{name}'")
        if nav is None:
            _check_expand(spec, expand)
            return {"d": _entity(state, base, spec, row, expand, select)}
        if nav not in spec.navigation:
            raise ODataError(404, "/IWBEP/CM_MGW_RT/020", f"Resource not found for segment '{nav}'")
        found = state.navigate(name, row, nav)
        target = entity_set(spec.navigation[nav].target)
        if not isinstance(found, list):
            if found is None:
                raise ODataError(404, "/IWBEP/CM_MGW_RT/020", f"Resource not found for segment '{nav}'")
            return {"d": _entity(state, base, target, found, expand, select)}
        spec, rows = target, found
    else:
        rows = state.rows(name)
    if select is not None:
        unknown = sorted(p for p in select if p not in spec.properties and p not in spec.navigation)
        if unknown:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/005",
                             f"Property '{unknown[0]}' is invalid: it is not part of {spec.type_name}")
    _check_expand(spec, expand)
    try:
        if params.get("$filter"):
            predicate = compile_filter(params["$filter"], spec)
            rows = [row for row in rows if predicate(row)]
        if params.get("$orderby"):
            rows = sort_rows(rows, order_key(params["$orderby"], spec))
        skip = _count(params, "$skip", 0)
        top = _count(params, "$top", None)
        position = _count(params, "$skiptoken", skip)
    except QueryError as exc:
        raise ODataError(400, "/IWBEP/CM_MGW_RT/004", str(exc)) from None
    end = len(rows) if top is None else min(len(rows), skip + top)
    page = rows[position:min(end, position + page_size)]
    body: dict[str, Any] = {"results": [_entity(state, base, spec, row, expand, select) for row in page]}
    if params.get("$inlinecount") == "allpages":
        body["__count"] = str(len(rows))
    if position + page_size < end:
        query = "&".join(f"{quote(k, safe='$')}={quote(v, safe='')}" for k, v in params.multi_items()
                         if k != "$skiptoken")
        body["__next"] = f"{base}/{resource}?{query + '&' if query else ''}$skiptoken={position + page_size}"
    return {"d": body}


def _count(params: Any, name: str, default: int | None) -> int | None:
    text = params.get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise QueryError(f"invalid {name}: {text!r} is not a non-negative number")
    return int(text)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ODataError(400, "/IWBEP/CM_MGW_RT/006", "Malformed request body: not JSON") from None
    if not isinstance(body, dict):
        raise ODataError(400, "/IWBEP/CM_MGW_RT/006", "Malformed request body: expected a JSON object")
    return body
