"""ERP Europe of the global manufacturer when no Tryton is installed: a small JSON ERP over paged REST.

It is the paged API of :mod:`.rest_api` (cursor, offset and Link paging, ``updated_since`` net change, fault knobs
under ``/api/_sandbox/faults``: latency, 429s with ``Retry-After``, 500s, outages), seeded with the European
company's data in its own conventions, which differ from the other two ERPs for the same products:

- item codes ``MAT-100-200`` (canonical ``100200``: strip ``MAT-``, remove ``-``);
- units ``ST`` (piece) and ``KAR`` (carton of 12);
- item status ``10`` active, ``20`` blocked, ``90`` obsolete; plant ``1000`` (canonical ``DE-HAM``);
- stamps in the plant's local time (Europe/Berlin), ``DD.MM.YYYY HH:MM``.

Collections: ``materials``, ``stock``, ``boms`` (one row per component), ``suppliers``; read them with the ``rest``
connector at ``/api/v1/cursor/<collection>``.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from syncfabric.sandbox.rest_api import create_app

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
            "PLIFZ": pick.randint(3, 21), "EISBE": pick.randint(0, 50), "LIFNR": pick.choice(SUPPLIERS)[0]})
        unit = pick.choice(("ST", "KAR"))
        records["stock"].append({"id": f"{code}/{PLANT}", "MATNR": code, "WERKS": PLANT, "MEINS": unit,
                                 "LABST": pick.randint(0, 40) if unit == "KAR" else pick.randint(0, 500),
                                 "STAMP": local_stamp(now)})
    for parent in finished:
        for component in pick.sample(raw, k=min(2, len(raw))):
            records["boms"].append({"id": f"{eu_code(parent)}/{eu_code(component)}", "MATNR": eu_code(parent),
                                    "IDNRK": eu_code(component), "MENGE": pick.randint(1, 4), "MEINS": "ST",
                                    "WERKS": PLANT})
    return records


def create_erp_europe(products: list[str], finished: list[str], *, seed: int = 7, token: str | None = None,
                      now: dt.datetime | None = None) -> FastAPI:
    """The seeded ERP as an ASGI app; its state is ``app.state.rest`` and its fault knobs ``app.state.faults``."""
    app = create_app(token=token)
    moment = now or dt.datetime.now(dt.UTC)
    stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for collection, rows in seed_records(products, finished, seed, moment).items():
        app.state.rest.upsert(collection, [{**row, "updated_at": stamp} for row in rows])
    return app
