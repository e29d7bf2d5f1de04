"""ERP Europe of the global manufacturer when no Tryton is installed: a small JSON ERP over paged REST.

It is the paged API of :mod:`.rest_api` (cursor, offset and Link paging, ``updated_since`` net change, fault knobs
under ``/api/_sandbox/faults``: latency, 429s with ``Retry-After``, 500s, outages), seeded with the European
company's data in its own conventions, which differ from the other two ERPs for the same products:

- item codes ``MAT-100-200`` (canonical ``100200``: strip ``MAT-``, remove ``-``);
- units ``ST`` (piece) and ``KAR`` (carton of 12);
- item status ``10`` active, ``20`` blocked, ``90`` obsolete; plant ``1000`` (canonical ``DE-HAM``);
- stamps in the plant's local time (Europe/Berlin), ``DD.MM.YYYY HH:MM``.

Collections: ``materials``, ``stock``, ``boms`` (one per finished material, its components in ``STPO``),
``suppliers``; read them with the ``rest``
connector at ``/api/v1/cursor/<collection>``.

Orders: ``PUT /api/v1/orders/<reference>`` books a purchase order (``ORDER_KIND: EK``, from ``LIFNR`` or the
material's own supplier) or a production order (``FA``) for ``MATNR`` in plant ``WERKS``, ``MENGE`` ``MEINS``
from ``START`` to ``ENDE`` (ISO dates). Idempotent by reference: the first request books the order (201, its new
number ``EK-000001`` / ``FA-000001``), any later one with the same reference answers the order booked (200,
``created: false``) and books nothing. Unknown materials, suppliers or plants and quantities that are not positive
are refused with 422 and a ``detail`` naming the field. Booked orders are the collections ``purchase-orders`` and
``production-orders``.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from syncfabric.sandbox.rest_api import RestState, create_app

PLANT = "1000"
BERLIN = ZoneInfo("Europe/Berlin")
SUPPLIERS = (("L-4711", "Hanse Metallwerke GmbH"), ("L-4712", "Rheinland Kunststoff AG"),
             ("L-4713", "Alpine Precision Parts GmbH"))


def eu_code(item_id: str) -> str:
    """The European ERP's code of a canonical item id: ``100200`` → ``MAT-100-200``."""
    return f"MAT-{item_id[:3]}-{item_id[3:]}"


def local_stamp(moment: dt.datetime) -> str:
    return moment.astimezone(BERLIN).strftime("%d.%m.%Y %H:%M")


def seed_records(products: list[str], finished: list[str], seed: int, now: dt.datetime) -> dict[str, list[dict]]:
    """The seeded collections for ``products`` (canonical ids); ``finished`` ones get a BOM of raw products."""
    pick = random.Random(seed)
    raw = [item for item in products if item not in finished]
    records: dict[str, list[dict[str, Any]]] = {"materials": [], "stock": [], "boms": [], "suppliers": []}
    for number, name in SUPPLIERS:
        records["suppliers"].append({"id": number, "LIFNR": number, "NAME1": name, "SPERR": ""})
    for item in products:
        code = eu_code(item)
        records["materials"].append({
            "id": code, "MATNR": code, "MAKTX": f"{'Baugruppe' if item in finished else 'Teil'} {item}",
            "MEINS": "ST", "MSTAE": pick.choice(("10", "10", "10", "20")), "BESKZ": "E" if item in finished else "F",
            "PLIFZ": pick.randint(3, 21), "EISBE": pick.randint(0, 50) * 6, "LIFNR": pick.choice(SUPPLIERS)[0]})
        unit = pick.choice(("ST", "KAR"))
        records["stock"].append({"id": f"{code}/{PLANT}", "MATNR": code, "WERKS": PLANT, "MEINS": unit,
                                 "LABST": pick.randint(0, 40) if unit == "KAR" else pick.randint(0, 500),
                                 "STAMP": local_stamp(now)})
    for parent in finished:
        components = [{"POSNR": f"{10 * (number + 1):04d}", "IDNRK": eu_code(component),
                       "MENGE": pick.randint(1, 4), "MEINS": "ST"}
                      for number, component in enumerate(pick.sample(raw, k=min(2, len(raw))))]
        records["boms"].append({"id": f"{eu_code(parent)}/{PLANT}", "MATNR": eu_code(parent), "WERKS": PLANT,
                                "BMENG": 1, "BMEIN": "ST", "STPO": components})
    return records


def create_erp_europe(products: list[str], finished: list[str], *, seed: int = 7, token: str | None = None,
                      now: dt.datetime | None = None) -> FastAPI:
    """The seeded ERP as an ASGI app; its state is ``app.state.rest`` and its fault knobs ``app.state.faults``."""
    app = create_app(token=token)
    moment = now or dt.datetime.now(dt.UTC)
    stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for collection, rows in seed_records(products, finished, seed, moment).items():
        app.state.rest.upsert(collection, [{**row, "updated_at": stamp} for row in rows])
    app.state.rest.upsert("purchase-orders", [])
    app.state.rest.upsert("production-orders", [])
    _install_orders(app, app.state.rest, token)
    return app


ORDER_KINDS = {"EK": ("purchase-orders", "EK"), "FA": ("production-orders", "FA")}


def _install_orders(app: FastAPI, state: RestState, token: str | None) -> None:
    booked: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    @app.put("/api/v1/orders/{reference}")
    async def book(reference: str, request: Request) -> JSONResponse:
        if token is not None and request.headers.get("Authorization", "") != f"Bearer {token}":
            raise HTTPException(401, "missing or wrong credentials", headers={"WWW-Authenticate": "Bearer"})
        state.requests[request.url.path] += 1
        body = await request.json()
        if not isinstance(body, dict):
            raise HTTPException(422, "the order is not a JSON object")
        with lock:
            if reference in booked:
                return JSONResponse({**booked[reference], "created": False})
            order = _order(state, reference, body)
            collection, prefix = ORDER_KINDS[order["ORDER_KIND"]]
            order["id"] = order["NUMBER"] = f"{prefix}-{len(state.collections.get(collection, {})) + 1:06d}"
            state.upsert(collection, [order])
            booked[reference] = {"reference": reference, "number": order["NUMBER"], "kind": order["ORDER_KIND"]}
            return JSONResponse({**booked[reference], "created": True}, status_code=201)


def _order(state: RestState, reference: str, body: dict[str, Any]) -> dict[str, Any]:
    """The order to book from a request body; HTTPException 422 naming the field that is wrong."""
    kind = body.get("ORDER_KIND")
    if kind not in ORDER_KINDS:
        raise HTTPException(422, f"ORDER_KIND must be EK (purchase) or FA (production), not {kind!r} "
                                 f"(order {reference})")
    material = state.collections.get("materials", {}).get(str(body.get("MATNR")))
    if material is None:
        raise HTTPException(422, f"MATNR {body.get('MATNR')!r} is no material of this ERP (order {reference})")
    if str(body.get("WERKS")) != PLANT:
        raise HTTPException(422, f"WERKS {body.get('WERKS')!r} is no plant of this ERP (order {reference})")
    try:
        quantity = float(body.get("MENGE"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        quantity = 0.0
    if quantity <= 0:
        raise HTTPException(422, f"MENGE must be a positive number, not {body.get('MENGE')!r} (order {reference})")
    order = {"REFERENCE": reference, "ORDER_KIND": kind, "MATNR": material["MATNR"], "WERKS": PLANT,
             "MENGE": body["MENGE"], "MEINS": body.get("MEINS") or material["MEINS"], "START": body.get("START"),
             "ENDE": body.get("ENDE")}
    if kind == "EK":
        supplier = body.get("LIFNR") or material.get("LIFNR")
        if str(supplier) not in state.collections.get("suppliers", {}):
            raise HTTPException(422, f"LIFNR {supplier!r} is no supplier of this ERP (order {reference})")
        order["LIFNR"] = supplier
    return order
