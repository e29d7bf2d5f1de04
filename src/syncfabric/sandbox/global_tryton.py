"""ERP Europe of the global manufacturer as a real Tryton ERP: ``syncfabric demo --erp-europe tryton``.

The European company's data is the JSON ERP's (:func:`.erp_europe.seed_records`, one seed), put into Tryton as a
user of its client would, in Tryton's terms: products ``MAT-100-200`` with unit ``u`` (a carton of 12 is 12 ``u``),
suppliers as parties by code, a purchase order point per bought product and an internal one per made product
(their minimal quantity is the reorder point: safety stock plus use during the lead time), the bought products'
suppliers with lead times, one BOM per made product, the stock received into the storage zone of warehouse ``WH``
(the Munich plant, DE-MUC). That database is seeded once per Tryton version and seed and kept beside the
initialised one (:func:`.tryton_server.cache_dir`).

Each policy's day runs its own ``trytond`` on a copy, behind a small JSON-RPC proxy with the sandbox's fault knobs
(the demo's 429s reach the connector from there). The day's stock changes, which the demo draws as rows of the JSON
ERP's shape, become inventory moves between the storage zone and lost-and-found (:class:`TrytonStock`), so both
variants live the same day. The estate is ``estate.yaml`` with ``estate-tryton.yaml`` laid over it
(:func:`estate_text`); at the end the planned orders for Munich are written back, twice, and the documents Tryton
holds for them are counted (:func:`write_back`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi import FastAPI, Request, Response

from syncfabric.connectors.tryton.client import TrytonClient
from syncfabric.connectors.tryton.configuration import TrytonConfig
from syncfabric.flows.runtime import Runtime
from syncfabric.sandbox.erp_europe import seed_records
from syncfabric.sandbox.faults import Faults, faults_router, install_faults
from syncfabric.sandbox.tryton_server import (
    LocalTryton,
    TrytonServer,
    cache_dir,
    cache_lock,
    initialised_database,
    keep,
)

OVERLAY = "estate-tryton.yaml"
PLANT = "DE-MUC"
WAREHOUSE = "WH"
STORAGE = "STO"
MASTER_FLOWS = ("eu-item-locations-in", "eu-item-suppliers-in", "eu-boms-in")
"""Master data Tryton has and the JSON ERP does not give: the demo reads them at night too."""
WRITE_BACK = "eu-planned-orders-out"
PIECES = {"ST": 1, "KAR": 12}
"""Pieces per unit of the JSON ERP's stock rows; Tryton keeps every product in pieces (``u``)."""
DAILY_USE = 10
"""Pieces a day Munich uses of each product: an order point's minimum is the reorder point, safety stock (``EISBE``)
plus what is used during the lead time (``PLIFZ`` days)."""
SEED_VERSION = "3"
"""Raise it when the seeding changes: the cached seeded database is made again."""


@dataclass
class EuropeWriteBack:
    """What the write-back to Tryton did, counted in Tryton."""

    planned: int = 0
    """Planned orders for Munich in the store (buy and make)."""
    documents: Counter[str] = field(default_factory=Counter)
    """Tryton documents whose reference is one of them, per model (``purchase.purchase``, ``production``)."""
    duplicates: int = 0
    """Documents beyond the first for one planned order (0: each was created once, though sent twice)."""
    dead_letters: int = 0
    """Planned orders Tryton refused (orders waiting for planner review not counted)."""
    waiting: int = 0
    """Planned orders waiting for planner review instead of being written."""
    resent: int = 0
    """Planned orders sent the second time."""
    stock: dict[str, float] = field(default_factory=dict)
    """Tryton's stock in the storage zone at the end, per product code."""


# ---- the estate ------------------------------------------------------------------------------------------------


def estate_text(base: str, overlay: Path) -> str:
    """``base`` (estate.yaml's text) with the overlay laid over it, as YAML."""
    estate = yaml.safe_load(base)
    layer = yaml.safe_load(overlay.read_text(encoding="utf-8"))
    for section, entries in layer.items():
        target = estate.setdefault(section, {})
        for name, value in (entries or {}).items():
            if value is None:
                target.pop(name, None)
            else:
                target[name] = value
    header = f"# {overlay.name} laid over estate.yaml (syncfabric demo --erp-europe tryton)\n"
    return header + yaml.safe_dump(estate, sort_keys=False, allow_unicode=True, width=120)




def environ(base: dict[str, str], app: FastAPI, url: str) -> dict[str, str]:
    """The demo's environment for the Tryton variant: ERP Europe is reached at ``url`` (the proxy)."""
    server: TrytonServer = app.state.tryton.server
    out = {name: value for name, value in base.items() if name != "SYNCFABRIC__SYSTEMS__ERP_EU__CONNECTION__BASE_URL"}
    out.update({"ERP_EU_PASSWORD": server.password, "SYNCFABRIC__SYSTEMS__ERP_EU__CONNECTION__URL": url,
                "SYNCFABRIC__SYSTEMS__ERP_EU__CONNECTION__DATABASE": server.database,
                "SYNCFABRIC__SYSTEMS__ERP_EU__CONNECTION__USER": server.user})
    return out


# ---- the server ------------------------------------------------------------------------------------------------


@dataclass
class TrytonEurope:
    server: TrytonServer
    client: TrytonClient

    def documents(self, references: list[str]) -> dict[str, list[tuple[str, int, str]]]:
        """Purchases and productions per planned order reference: ``(model, id, state)``."""
        found: dict[str, list[tuple[str, int, str]]] = {}
        for model in ("purchase.purchase", "production"):
            rows = self.client.execute(model, "search_read", [["reference", "in", references]], 0, None,
                                       [["id", "ASC"]], ["reference", "state"])
            for row in rows:
                found.setdefault(row["reference"], []).append((model, int(row["id"]), str(row["state"])))
        return found

    def stock(self) -> dict[str, float]:
        """On-hand quantity per product code in the storage zone, as Tryton computes it."""
        storage = self.client.execute("stock.location", "search", [["code", "=", STORAGE]], 0, 1, None)
        rows = self.client.execute("product.product", "search_read", [["type", "=", "goods"]], 0, None, None,
                                   ["code", "quantity"], context={"locations": storage, "with_childs": False})
        return {row["code"]: float(row["quantity"]) for row in rows}


@contextmanager
def tryton_europe(products: list[str], finished: list[str], *, seed: int, now: dt.datetime) -> Iterator[FastAPI]:
    """A Tryton with the European company, behind a proxy app to serve: ``app.state.rest`` takes the day's stock
    rows, ``app.state.faults`` are the proxy's fault knobs, ``app.state.tryton`` is the :class:`TrytonEurope`."""
    records = seed_records(products, finished, seed, now)
    local = LocalTryton(seeded_database(records))
    try:
        server = local.start()
        client = _client(server)
        try:
            faults = Faults()
            app = proxy_app(server.url, faults)
            app.state.faults = faults
            app.state.tryton = TrytonEurope(server, client)
            app.state.rest = TrytonStock(client, records["stock"])
            yield app
        finally:
            client.close()
    finally:
        local.stop()


def _client(server: TrytonServer) -> TrytonClient:
    config = TrytonConfig(url=server.url, database=server.database, user=server.user, accept_warnings=True)
    client = TrytonClient(config, server.password, system="erp-eu-sandbox")
    client.login()
    return client


def proxy_app(target: str, faults: Faults) -> FastAPI:
    """Tryton's JSON-RPC passed through, with the sandbox's fault knobs in front (``/api/_sandbox/faults``)."""
    upstream = httpx.AsyncClient(base_url=target, timeout=120)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await upstream.aclose()

    app = FastAPI(lifespan=lifespan)
    install_faults(app, faults, lambda path: not path.startswith("/api/_sandbox"))
    app.include_router(faults_router(faults), prefix="/api/_sandbox")

    @app.post("/{path:path}")
    async def forward(path: str, request: Request) -> Response:
        headers = {name: value for name, value in request.headers.items()
                   if name.lower() in ("authorization", "content-type", "accept")}
        answer = await upstream.post(f"/{path}", content=await request.body(), headers=headers)
        return Response(answer.content, status_code=answer.status_code,
                        media_type=answer.headers.get("content-type"))

    return app


# ---- seeding ---------------------------------------------------------------------------------------------------


def seeded_database(records: dict[str, list[dict[str, Any]]]) -> Path:
    """The initialised database with the European company seeded from ``records``; made once, then cached."""
    digest = hashlib.sha256(json.dumps([SEED_VERSION, records], sort_keys=True).encode()).hexdigest()[:16]
    target = cache_dir() / f"global-manufacturer-europe-{digest}.sqlite"
    if target.exists():
        return target
    initial = initialised_database()
    with cache_lock():
        return target if target.exists() else _seed(initial, records, target)


def _seed(initial: Path, records: dict[str, list[dict[str, Any]]], target: Path) -> Path:
    local = LocalTryton(initial)
    try:
        server = local.start()
        client = _client(server)
        try:
            seed_company(client, records)
        finally:
            client.close()
        local.terminate()
        return keep(local.database_path, target)
    finally:
        local.stop()


class _Seeder:
    def __init__(self, client: TrytonClient) -> None:
        self.client = client

    def x(self, model: str, method: str, *args: Any) -> Any:
        return self.client.execute(model, method, *args)

    def one(self, model: str, domain: list[Any]) -> int:
        return int(self.x(model, "search", domain, 0, 1, None)[0])


def seed_company(client: TrytonClient, records: dict[str, list[dict[str, Any]]]) -> None:
    """Put the European company's records (the JSON ERP's shape) into Tryton."""
    s = _Seeder(client)
    currency = s.x("currency.currency", "create", [{"name": "Euro", "code": "EUR", "symbol": "€",
                                                    "rounding": Decimal("0.01"), "digits": 2}])[0]
    party = s.x("party.party", "create", [{"name": "Europa Fertigung GmbH",
                                           "addresses": [["create", [{"city": "München"}]]]}])[0]
    company = s.x("company.company", "create", [{"party": party, "currency": currency}])[0]
    s.x("res.user", "write", [client.user_id], {"companies": [["add", [company]]], "company": company})
    client.login()  # the context now carries the company

    unit = s.one("product.uom", [["symbol", "=", "u"]])
    locations = {code: s.one("stock.location", [["code", "=", code]]) for code in (WAREHOUSE, STORAGE, "IN", "SUP")}
    # Munich keeps its stock in the storage zone: the input and output zones lose their codes, so that the
    # connector, which reads stock of the storage locations with a code, reads that one zone every tick
    s.x("stock.location", "write", [locations["IN"], s.one("stock.location", [["code", "=", "OUT"]])], {"code": None})
    parties = dict(zip([row["LIFNR"] for row in records["suppliers"]], s.x("party.party", "create", [
        {"name": row["NAME1"], "code": row["LIFNR"], "addresses": [["create", [{"city": "Deutschland"}]]]}
        for row in records["suppliers"]]), strict=True))

    materials = records["materials"]
    templates = s.x("product.template", "create", [{
        "name": row["MAKTX"], "code": row["MATNR"], "type": "goods", "default_uom": unit,
        "purchasable": row["BESKZ"] == "F", "purchase_uom": unit if row["BESKZ"] == "F" else None,
        "producible": row["BESKZ"] == "E", "list_price": Decimal(0),
        "products": [["create", [{"suffix_code": ""}]]]} for row in materials])
    by_template = {row["template"]: int(row["id"])
                   for row in s.x("product.product", "search_read", [["template", "in", templates]], 0, None, None,
                                  ["template"])}
    product = {row["MATNR"]: by_template[template] for row, template in zip(materials, templates, strict=True)}
    template = {row["MATNR"]: int(ident) for row, ident in zip(materials, templates, strict=True)}

    bought = [row for row in materials if row["BESKZ"] == "F"]
    s.x("purchase.product_supplier", "create", [{
        "template": template[row["MATNR"]], "party": parties[row["LIFNR"]], "company": company,
        "currency": currency, "lead_time": dt.timedelta(days=int(row["PLIFZ"])),
        "prices": [["create", [{"quantity": 0.0, "unit_price": Decimal(2 + int(row["MATNR"][-3:]) % 40)}]]],
    } for row in bought])
    points = []
    for row in materials:
        minimum = float(int(row["EISBE"]) + DAILY_USE * int(row["PLIFZ"]))  # a reorder point
        point = {"product": product[row["MATNR"]], "company": company, "min_quantity": minimum,
                 "target_quantity": 2 * minimum}
        if row["BESKZ"] == "F":
            points.append({**point, "type": "purchase", "location": locations[WAREHOUSE]})
        else:  # kept up in the storage zone from the input zone: its minimum is what planning protects
            points.append({**point, "type": "internal", "location": locations[STORAGE],
                           "provisioning_location": locations["IN"]})
    if points:
        s.x("stock.order_point", "create", points)

    for row in sorted(records["boms"], key=lambda bom: bom["MATNR"]):  # one per parent, its lines in STPO
        parent, lines = row["MATNR"], row["STPO"]
        bom = s.x("production.bom", "create", [{
            "name": f"Stückliste {parent}",
            "inputs": [["create", [{"product": product[line["IDNRK"]], "quantity": float(line["MENGE"]),
                                    "unit": unit} for line in lines]]],
            "outputs": [["create", [{"product": product[parent], "quantity": 1.0, "unit": unit}]]],
        }])[0]
        s.x("product.product", "write", [product[parent]], {"boms": [["create", [{"bom": bom}]]]})

    moves = [{"product": product[row["MATNR"]], "quantity": float(_pieces(row)), "unit": unit,
              "from_location": locations["SUP"], "to_location": locations[STORAGE], "company": company,
              "unit_price": Decimal(1), "currency": currency, "effective_date": dt.date.today()}
             for row in records["stock"] if _pieces(row)]
    if moves:
        s.x("stock.move", "do", s.x("stock.move", "create", moves))


def _pieces(row: dict[str, Any]) -> int:
    return int(row["LABST"]) * PIECES[str(row["MEINS"])]


class TrytonStock:
    """ERP Europe's stock rows as the demo's day changes them (the JSON ERP's shape: ``MATNR``, ``LABST`` in
    ``MEINS``), posted to Tryton as a stock count of the storage zone (``stock.inventory``, confirmed: Tryton
    moves the differences to or from lost-and-found), as a warehouse clerk would."""

    def __init__(self, client: TrytonClient, rows: list[dict[str, Any]]) -> None:
        self.client = client
        self.collections: dict[str, dict[str, dict[str, Any]]] = {"stock": {row["id"]: dict(row) for row in rows}}
        self._ids: dict[str, int] = {}

    def _id(self, what: str, model: str, domain: list[Any]) -> int:
        if what not in self._ids:
            self._ids[what] = int(self.client.execute(model, "search", domain, 0, 1, None)[0])
        return self._ids[what]

    def upsert(self, collection: str, rows: list[dict[str, Any]]) -> None:
        if collection != "stock":
            raise ValueError(f"Tryton's ERP Europe takes stock rows only, not {collection!r}")
        counted = {}
        for row in rows:
            self.collections["stock"][row["id"]] = dict(row)
            counted[row["MATNR"]] = float(_pieces(row))
        if not counted:
            return
        lines = [{"product": self._id(code, "product.product", [["code", "=", code]]), "quantity": quantity}
                 for code, quantity in counted.items()]
        inventory = self.client.execute("stock.inventory", "create", [{
            "location": self._id("storage", "stock.location", [["code", "=", STORAGE]]),
            "company": int(self.client.context["company"]), "date": dt.date.today(),
            "lines": [["create", lines]]}])
        self.client.execute("stock.inventory", "confirm", inventory)


# ---- the end of the day ----------------------------------------------------------------------------------------


def read_at_reconciliation(runtime: Runtime, stock_flows: tuple[str, ...], planning: str) -> None:
    """With Tryton, every stock source is read in full (Tryton has no net change of stock), so reconciliation
    compares the sources with the store too, and SAP's and Tryton's balances carry their read time: they are read
    once more at the time of the reconciliation, and the planning platform brought up to date, as a reconciliation
    job at the end of the day would do."""
    for name in stock_flows:
        runtime.run_flow(name)
    runtime.run_flow(planning)


# ---- write-back ------------------------------------------------------------------------------------------------


def booked(runtime: Runtime, app: FastAPI, *, resent: int) -> EuropeWriteBack:
    """What Tryton holds for Munich's planned orders after the demo's write-back flow sent them, and ``resent`` of
    them a second time (a resend of what the flow delivered, as after a lost acknowledgement); and its stock."""
    from syncfabric.flows.write_back import waiting

    planned = [row.key for row in runtime.store.current("planned_order")
               if row.payload is not None and json.loads(row.payload).get("location_id") == PLANT]
    tryton: TrytonEurope = app.state.tryton
    review = len(waiting(runtime.store, WRITE_BACK))
    result = EuropeWriteBack(planned=len(planned), resent=resent, stock=tryton.stock(), waiting=review,
                             dead_letters=len(runtime.store.dead_letters(flow=WRITE_BACK)) - review)
    if planned:
        for documents in tryton.documents(planned).values():
            result.documents.update(model for model, _, _ in documents)
            result.duplicates += len(documents) - 1
    return result


def documents_cell(result: EuropeWriteBack) -> str:
    """``12 → 9 purchases + 3 productions, 0 duplicates`` for the demo's table."""
    return (f"{result.planned} → {result.documents['purchase.purchase']} purchases + "
            f"{result.documents['production']} productions, {result.duplicates} duplicates"
            + (f", {result.waiting} waiting for review" if result.waiting else "")
            + (f", {result.dead_letters} dead letters" if result.dead_letters else ""))
