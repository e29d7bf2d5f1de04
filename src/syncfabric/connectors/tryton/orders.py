"""Planned orders written back to Tryton: a buy order becomes a purchase, a make order a production.

Idempotent in two ways, so that a re-sent planned order never makes a second document:

- the outbound flow passes the document a planned order is already linked to in the cross-reference
  (``OutboundRecord.external_id``, ``purchase.purchase,12``), and stores the link this writer reports for a new one
  in the same transaction as its checkpoint;
- every document carries the planned order's key in ``reference``, and a planned order without a link is looked up
  by it before anything is created: a crash between Tryton's commit and ours finds the document made before it.

A document still in draft follows its planned order (quantity and dates; a production's moves are exploded from its
bill of material again); once Tryton has moved it on (quoted, confirmed, waiting, ...) it is left alone. Planned
orders whose status is not in ``send_statuses`` are accepted and not written. A planned order that is deleted or
rejected after its document was made is rejected here, so that a person decides in Tryton what becomes of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from syncfabric.connectors.base import OutboundRecord, WriteOutcome
from syncfabric.connectors.tryton.client import TrytonClient
from syncfabric.connectors.tryton.configuration import TrytonConfig
from syncfabric.errors import PermanentError

PURCHASE = "purchase.purchase"
PRODUCTION = "production"
MODELS = {"buy": PURCHASE, "make": PRODUCTION}
_DRAFT = frozenset({"draft", "request"})
_MOVE_FIELDS = ("product", "unit", "quantity", "from_location", "to_location", "company", "currency", "unit_price")


@dataclass(frozen=True)
class Document:
    model: str
    id: int
    state: str

    @property
    def external_id(self) -> str:
        return f"{self.model},{self.id}"


class OrderWriter:
    entity = "planned_order"

    def __init__(self, client: TrytonClient, config: TrytonConfig, system: str) -> None:
        self.client = client
        self.config = config
        self.system = system
        self._ids: dict[tuple[str, str], Any] = {}

    def write(self, records: Sequence[OutboundRecord]) -> WriteOutcome:
        """Transient errors are raised (the whole write is sent again, and finds what it already made);
        permanent ones reject their planned order with Tryton's message."""
        outcome = WriteOutcome()
        for record in records:
            try:
                document = self._write_one(record)
            except PermanentError as exc:
                outcome.rejected[record.key] = str(exc)
                continue
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                outcome.rejected[record.key] = f"not a planned order Tryton can take: {type(exc).__name__}: {exc}"
                continue
            outcome.accepted.append(record.key)
            if document is not None:
                outcome.links[record.key] = document.external_id
        return outcome

    def _write_one(self, record: OutboundRecord) -> Document | None:
        payload = record.payload
        order_type = payload.get("order_type") if payload else None
        if payload is not None and order_type not in MODELS:
            raise self._error(f"{order_type} planned orders are not written to Tryton (buy and make are)", record)
        existing = self._existing(record, MODELS.get(order_type or ""))
        if payload is None or payload.get("status") == "rejected":
            if existing is None:
                return None
            what = "deleted" if payload is None else "rejected"
            raise self._error(f"the planned order was {what} after it became {existing.external_id} "
                              f"({existing.state}); that document is left as it is: cancel it in Tryton if it is "
                              "no longer wanted", record)
        if payload.get("status") not in self.config.send_statuses:
            return existing
        if order_type == "buy":
            return self._purchase(record, payload, existing)
        return self._production(record, payload, existing)

    # ---- finding what a planned order already became ------------------------------------------------------------

    def _existing(self, record: OutboundRecord, model: str | None) -> Document | None:
        if record.external_id:
            model_name, _, ident = record.external_id.rpartition(",")
            rows = self._call(model_name, "search_read", [["id", "=", int(ident)]], 0, 1, None, ["state"],
                              key=record.key, context={"active_test": False})
            if not rows:
                raise self._error(f"{record.external_id}, linked to this planned order, no longer exists in "
                                  "Tryton", record)
            return Document(model_name, int(ident), str(rows[0]["state"]))
        for candidate in [model] if model else list(MODELS.values()):
            rows = self._call(candidate, "search_read", [["reference", "=", record.key]], 0, 1, [["id", "ASC"]],
                              ["state"], key=record.key, context={"active_test": False})
            if rows:
                return Document(candidate, int(rows[0]["id"]), str(rows[0]["state"]))
        return None

    # ---- purchases ---------------------------------------------------------------------------------------------

    def _purchase(self, record: OutboundRecord, order: dict[str, Any], existing: Document | None) -> Document:
        key = record.key
        product = self._product(order["item_id"], record)
        quantity = order["quantity"]
        unit = self._unit(quantity["unit"], product, record)
        if existing is not None and existing.state not in _DRAFT:
            return existing
        line = {"product": product["id"], "quantity": float(Decimal(str(quantity["value"]))), "unit": unit,
                "type": "line"}
        if existing is not None:
            lines = self._call("purchase.line", "search", [["purchase", "=", existing.id],
                                                            ["product", "=", product["id"]]], 0, None, None, key=key)
            self._call(PURCHASE, "write", [existing.id], {
                "purchase_date": _date(order["start_date"]), "delivery_date": _date(order["due_date"]),
                "lines": [["write", lines, {"quantity": line["quantity"], "unit": unit}]],
            }, key=key)
            document = existing
        else:
            warehouse = self._warehouse(order["location_id"], record)
            party = self._supplier(order.get("supplier_id"), product, record)
            company = self._company(record)
            header = {"company": company["id"], "party": party, "currency": company["currency"],
                      "warehouse": warehouse["id"], "invoice_method": "manual",
                      "purchase_date": _date(order["start_date"]), "delivery_date": _date(order["due_date"]),
                      "reference": key}
            addresses = self._call("party.address", "search", [["party", "=", party]], 0, 1, [["id", "ASC"]],
                                   key=key)
            if addresses:
                header["invoice_address"] = addresses[0]
            changed = self._call("purchase.line", "on_change", {
                **line, **{f"_parent_purchase.{name}": value for name, value in header.items()},
            }, ["quantity", "unit"], key=key)
            line["unit_price"] = _decimal(changed.get("unit_price") if isinstance(changed, dict) else None)
            ids = self._call(PURCHASE, "create", [{**header, "lines": [["create", [line]]]}], key=key)
            document = Document(PURCHASE, int(ids[0]), "draft")
        if self.config.purchase_state == "quotation":
            self._call(PURCHASE, "quote", [document.id], key=key)
            document = Document(PURCHASE, document.id, "quotation")
        return document

    # ---- productions -------------------------------------------------------------------------------------------

    def _production(self, record: OutboundRecord, order: dict[str, Any], existing: Document | None) -> Document:
        key = record.key
        if existing is not None and existing.state not in _DRAFT:
            return existing
        product = self._product(order["item_id"], record)
        quantity = order["quantity"]
        warehouse = self._warehouse(order["location_id"], record)
        company = self._company(record)
        values: dict[str, Any] = {
            "company": company["id"], "warehouse": warehouse["id"], "location": warehouse["production_location"],
            "product": product["id"], "quantity": float(Decimal(str(quantity["value"]))),
            "unit": self._unit(quantity["unit"], product, record),
        }
        links = self._call("product.product-production.bom", "search_read", [["product", "=", product["id"]]], 0, 1,
                           [["sequence", "ASC"], ["id", "ASC"]], ["bom", "routing"], key=key)
        if links:
            values["bom"] = links[0]["bom"]
            if links[0].get("routing"):
                values["routing"] = links[0]["routing"]
        moves = self._moves(values, record) if "bom" in values else {}
        dates = {"planned_date": _date(order["due_date"]), "planned_start_date": _date(order["start_date"])}
        if existing is not None:
            old = self._call(PRODUCTION, "read", [existing.id], ["inputs", "outputs"], key=key)[0]
            changes = {**values, **dates}
            for name in ("inputs", "outputs"):
                commands: list[Any] = [["delete", old[name]]] if old[name] else []
                if moves.get(name):
                    commands.append(["create", moves[name]])
                if commands:
                    changes[name] = commands
            self._call(PRODUCTION, "write", [existing.id], changes, key=key)
            return existing
        creates = {name: [["create", rows]] for name, rows in moves.items() if rows}
        ids = self._call(PRODUCTION, "create", [{**values, **dates, "reference": key, **creates}], key=key)
        return Document(PRODUCTION, int(ids[0]), "draft")

    def _moves(self, values: dict[str, Any], record: OutboundRecord) -> dict[str, list[dict[str, Any]]]:
        """The input and output moves Tryton explodes from the bill of material (what its client does)."""
        changed = self._call(PRODUCTION, "on_change", values, ["bom"], key=record.key)
        moves: dict[str, list[dict[str, Any]]] = {}
        for name in ("inputs", "outputs"):
            added = (changed.get(name) or {}).get("add", []) if isinstance(changed, dict) else []
            moves[name] = [{field: move[field] for field in _MOVE_FIELDS if move.get(field) is not None}
                           for _, move in added]
        return moves

    # ---- resolving canonical ids to Tryton records ---------------------------------------------------------------

    def _product(self, code: str, record: OutboundRecord) -> dict[str, Any]:
        rows = self._cached("product", code, lambda: self._call(
            "product.product", "search_read", [["code", "=", code]], 0, 1, None, ["default_uom.symbol"],
            key=record.key))
        if not rows:
            raise self._error(f"no Tryton product with code {code!r} (item_id)", record)
        return rows[0]

    def _warehouse(self, code: str, record: OutboundRecord) -> dict[str, Any]:
        rows = self._cached("warehouse", code, lambda: self._call(
            "stock.location", "search_read", [["code", "=", code], ["type", "=", "warehouse"]], 0, 1, None,
            ["production_location"], key=record.key))
        if not rows:
            raise self._error(f"no Tryton warehouse with code {code!r} (location_id)", record)
        return rows[0]

    def _supplier(self, code: str | None, product: dict[str, Any], record: OutboundRecord) -> int:
        if code:
            rows = self._cached("party", code, lambda: self._call(
                "party.party", "search", [["code", "=", code]], 0, 1, None, key=record.key))
            if not rows:
                raise self._error(f"no Tryton party with code {code!r} (supplier_id)", record)
            return int(rows[0])
        sources = self._call("purchase.product_supplier", "search_read",
                             ["OR", [["product", "=", product["id"]]],
                              [["product", "=", None], ["template.products", "=", product["id"]]]],
                             0, 1, [["sequence", "ASC"], ["id", "ASC"]], ["party"], key=record.key)
        if not sources:
            raise self._error("the planned order names no supplier_id and the product has no supplier in Tryton",
                              record)
        return int(sources[0]["party"])

    def _unit(self, code: str, product: dict[str, Any], record: OutboundRecord) -> int:
        symbol = self.config.units.get(code, code)
        default = product.get("default_uom.") or {}
        if str(default.get("symbol", "")).lower() == symbol.lower():
            return int(default["id"])
        rows = self._cached("unit", symbol, lambda: self._call(
            "product.uom", "search", [["symbol", "=", symbol]], 0, 1, None, key=record.key))
        if not rows:
            raise self._error(f"no Tryton unit with symbol {symbol!r} for unit {code!r} (add it to the system's "
                              "units: map)", record)
        return int(rows[0])

    def _company(self, record: OutboundRecord) -> dict[str, Any]:
        company = self.client.context.get("company")
        if not company:
            self.client.login()  # preferences are read at login; a company set since is picked up here
            company = self.client.context.get("company")
        if not company:
            raise self._error(f"the Tryton user {self.config.user!r} has no current company", record)
        return self._cached("company", str(company), lambda: self._call(
            "company.company", "read", [company], ["currency"], key=record.key))[0]

    def _cached(self, kind: str, code: str, load: Any) -> Any:
        if (kind, code) not in self._ids:
            self._ids[(kind, code)] = load()
        return self._ids[(kind, code)]

    def _call(self, model: str, method: str, *args: Any, key: str, context: dict[str, Any] | None = None) -> Any:
        return self.client.execute(model, method, *args, context=context, entity=self.entity, key=key)

    def _error(self, message: str, record: OutboundRecord) -> PermanentError:
        return PermanentError(message, system=self.system, entity=self.entity, key=record.key)


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(str(value))


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)
