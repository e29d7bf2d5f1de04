"""Test data put into a real Tryton through its JSON-RPC API, as a user of its client would.

Every code is made unique per test (``prefix``) so that tests sharing one server never see each other's keys.
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

from syncfabric.connectors.tryton.client import TrytonClient
from syncfabric.connectors.tryton.configuration import TrytonConfig

WAREHOUSE = "WH"
"""The warehouse of a fresh Tryton database (storage zone STO, production location PROD)."""

_serial = itertools.count(1)
_reference: dict[tuple[str, str], Any] = {}
"""Ids of reference data, the same for every seeder of a session (one server, one company)."""


class Seeder:
    def __init__(self, url: str, database: str, user: str, password: str) -> None:
        config = TrytonConfig(url=url, database=database, user=user, accept_warnings=True)
        self.client = TrytonClient(config, password, system="tryton-seed")
        self.client.login()
        self.prefix = f"T{next(_serial):03d}"
        self.company = self._company()

    def close(self) -> None:
        self.client.close()

    def x(self, model: str, method: str, *args: Any, **context: Any) -> Any:
        return self.client.execute(model, method, *args, context=context or None)

    def _company(self) -> int:
        if self.client.context.get("company"):
            return int(self.client.context["company"])  # set up by an earlier seeder of the session
        found = self.x("company.company", "search", [], 0, 1, None)
        if not found:
            currency = self.x("currency.currency", "create", [{"name": "US Dollar", "code": "USD", "symbol": "$",
                                                                "rounding": Decimal("0.01"), "digits": 2}])[0]
            party = self.x("party.party", "create", [{"name": "Acme Manufacturing"}])[0]
            found = self.x("company.company", "create", [{"party": party, "currency": currency}])
        user = self.client.user_id
        self.x("res.user", "write", [user], {"companies": [["add", found]], "company": found[0]})
        self.client.login()  # the context now carries the company
        return int(found[0])

    def code(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def unit(self, symbol: str) -> int:
        return self._once(("unit", symbol), lambda: int(
            self.x("product.uom", "search", [["symbol", "=", symbol]], 0, 1, None)[0]))

    def location(self, code: str) -> dict[str, Any]:
        return self._once(("location", code), lambda: self.x(
            "stock.location", "search_read", [["code", "=", code]], 0, 1, None,
            ["storage_location", "production_location", "input_location"])[0])

    def currency(self) -> int:
        return self._once(("currency", ""), lambda: int(
            self.x("company.company", "read", [self.company], ["currency"])[0]["currency"]))

    def _once(self, key: tuple[str, str], load: Any) -> Any:
        """Reference data (units, locations, the company's currency) read once per session."""
        if key not in _reference:
            _reference[key] = load()
        return _reference[key]

    def item(self, name: str, *, unit: str = "u", purchasable: bool = True, producible: bool = False,
             price: str = "10") -> dict[str, Any]:
        """A template with one variant; returns ``{"id": variant id, "template": template id, "code": ...}``."""
        code = self.code(name)
        template = self.x("product.template", "create", [{
            "name": f"{name} ({self.prefix})", "code": code, "type": "goods", "default_uom": self.unit(unit),
            "purchasable": purchasable, "purchase_uom": self.unit(unit) if purchasable else None,
            "producible": producible, "list_price": Decimal(price), "products": [["create", [{"suffix_code": ""}]]],
        }])[0]
        variant = self.x("product.product", "search", [["template", "=", template]], 0, 1, None)[0]
        return {"id": int(variant), "template": int(template), "code": code, "unit": unit}

    def supplier(self, name: str) -> dict[str, Any]:
        party = self.x("party.party", "create", [{"name": f"{name} ({self.prefix})",
                                                   "addresses": [["create", [{"city": "Springfield"}]]]}])[0]
        code = self.x("party.party", "read", [party], ["code"])[0]["code"]
        return {"id": int(party), "code": code}

    def product_supplier(self, item: dict[str, Any], party: dict[str, Any], *, lead_days: int,
                         price: str) -> int:
        return int(self.x("purchase.product_supplier", "create", [{
            "template": item["template"], "party": party["id"], "company": self.company,
            "currency": self.currency(), "lead_time": dt.timedelta(days=lead_days),
            "prices": [["create", [{"quantity": 0.0, "unit_price": Decimal(price)}]]],
        }])[0])

    def bom(self, output: dict[str, Any], inputs: list[tuple[dict[str, Any], float, str]], *,
            steps: list[str] = ()) -> dict[str, int]:
        """A BOM for one unit of ``output`` and, with ``steps``, a routing; both linked to the product."""
        bom = self.x("production.bom", "create", [{
            "name": f"BOM {output['code']}",
            "inputs": [["create", [{"product": item["id"], "quantity": quantity, "unit": self.unit(unit)}
                                   for item, quantity, unit in inputs]]],
            "outputs": [["create", [{"product": output["id"], "quantity": 1.0, "unit": self.unit("u")}]]],
        }])[0]
        link: dict[str, Any] = {"bom": bom}
        routing = None
        if steps:
            operations = self.x("production.routing.operation", "create", [{"name": name} for name in steps])
            routing = self.x("production.routing", "create", [{
                "name": f"Routing {output['code']}", "boms": [["add", [bom]]],
                "steps": [["create", [{"operation": op, "sequence": 10 * (index + 1)}
                                      for index, op in enumerate(operations)]]],
            }])[0]
            link["routing"] = routing
        self.x("product.product", "write", [output["id"]], {"boms": [["create", [link]]]})
        return {"bom": int(bom), "routing": int(routing) if routing else 0}

    def receive(self, item: dict[str, Any], quantity: float, *, unit: str = "u", at: str = "STO") -> None:
        """Stock arriving from the supplier location, done today."""
        supplier_location = self.location("SUP")["id"]
        move = self.x("stock.move", "create", [{
            "product": item["id"], "quantity": quantity, "unit": self.unit(unit), "from_location": supplier_location,
            "to_location": self.location(at)["id"], "company": self.company, "unit_price": Decimal("1"),
            "currency": self.currency(), "effective_date": dt.date.today(),
        }])
        self.x("stock.move", "do", move)

    def purchase(self, party: dict[str, Any], lines: list[tuple[dict[str, Any], float, str]], *,
                 confirm: bool = True) -> dict[str, Any]:
        warehouse = self.location(WAREHOUSE)["id"]
        address = self.x("party.address", "search", [["party", "=", party["id"]]], 0, 1, None)[0]
        purchase = self.x("purchase.purchase", "create", [{
            "company": self.company, "party": party["id"], "currency": self.currency(), "warehouse": warehouse,
            "invoice_method": "manual", "invoice_address": address, "purchase_date": dt.date.today(),
            "delivery_date": dt.date.today() + dt.timedelta(days=10),
            "lines": [["create", [{"product": item["id"], "quantity": quantity, "unit": self.unit(item["unit"]),
                                   "unit_price": Decimal(price)} for item, quantity, price in lines]]],
        }])[0]
        self.x("purchase.purchase", "quote", [purchase])
        if confirm:
            self.x("purchase.purchase", "confirm", [purchase])
        return self.x("purchase.purchase", "read", [purchase], ["number", "state"])[0]

    def documents(self, model: str, reference: str) -> list[dict[str, Any]]:
        """Documents of a model whose reference is a planned order key."""
        fields = {"purchase.purchase": ["state", "party", "purchase_date", "delivery_date", "lines.quantity",
                                        "lines.product", "lines.unit_price", "lines.unit.symbol"],
                  "production": ["state", "product", "quantity", "planned_date", "planned_start_date",
                                 "inputs.product", "inputs.quantity", "outputs.quantity", "bom", "routing"]}[model]
        return self.x(model, "search_read", [["reference", "=", reference]], 0, None, [["id", "ASC"]], fields)

    def production(self, item: dict[str, Any], quantity: float, *, bom: int, start_in_days: int = 3,
                   due_in_days: int = 5) -> dict[str, Any]:
        """A production of ``item`` waiting to start (numbered), its moves exploded from the BOM."""
        warehouse = self.location(WAREHOUSE)
        values = {"company": self.company, "warehouse": warehouse["id"], "location": warehouse["production_location"],
                  "product": item["id"], "bom": bom, "quantity": quantity, "unit": self.unit(item["unit"])}
        changed = self.x("production", "on_change", values, ["bom"])
        keep = ("product", "unit", "quantity", "from_location", "to_location", "company", "currency", "unit_price")
        moves = {name: [["create", [{key: move[key] for key in keep if move.get(key) is not None}
                                    for _, move in changed[name]["add"]]]] for name in ("inputs", "outputs")}
        today = dt.date.today()
        production = self.x("production", "create", [{
            **values, **moves, "planned_start_date": today + dt.timedelta(days=start_in_days),
            "planned_date": today + dt.timedelta(days=due_in_days),
        }])[0]
        self.x("production", "wait", [production])
        return self.x("production", "read", [production], ["number", "state"])[0]
