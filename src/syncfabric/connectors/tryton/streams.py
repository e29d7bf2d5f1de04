"""What the connector reads from Tryton: one :class:`Stream` per source, named after the canonical entity it feeds.

A stream says which model it reads, which fields (dotted paths follow Many2One and x2many fields in one call), a
fixed filter, and which timestamps a net-change read polls. Tryton's answers are reshaped here, once, so that an
estate's mapping reads plain nested records:

- ``"default_uom.": {"id": 1, "symbol": "u"}`` (Tryton's answer for the dotted field ``default_uom.symbol``)
  becomes ``"default_uom": {"id": 1, "symbol": "u"}``: a mapping says ``default_uom.symbol``; x2many fields become
  lists of such records (``inputs: [{"product": {"code": ...}, "quantity": 1.5, ...}]``);
- a few streams add what Tryton spreads over several records: ``item_code`` of a supplier's price list is its
  variant's code, or the template's only variant's; ``unit_price`` that of its smallest quantity (see each
  ``shape`` function). Locations without a code are not read (a canonical location needs one).

| source | model | what a record holds |
|---|---|---|
| ``item`` | product.product | a variant with its template: code, name, type, units, cost, flags |
| ``supplier`` | party.party | code, name, country of the first address |
| ``item_supplier`` | purchase.product_supplier | ``item_code``, party, lead time, prices, ``unit_price`` |
| ``item_location`` | stock.order_point | an order point: product, ``warehouse`` (its own or its storage zone's),
  minimal and target quantity |
| ``location`` | stock.location | warehouses and storage locations with a code: name, type, parent |
| ``bill_of_material`` | production.bom | name, inputs, outputs, ``output`` (the first output) |
| ``routing`` | product.product-production.bom | a product's BOM with its routing and the routing's steps |
| ``purchase_order`` | purchase.purchase | numbered purchases with their lines; each line's ``deliveries`` |
| ``production_order`` | production | numbered productions with their inputs |
| ``inventory_balance`` | product.product per storage location | on-hand and forecast quantity |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Domain = list[Any]
Shape = Callable[[dict[str, Any]], dict[str, Any]]


def _identity(record: dict[str, Any]) -> dict[str, Any]:
    return record


@dataclass(frozen=True)
class Stream:
    name: str
    model: str
    fields: tuple[str, ...]
    domain: tuple[Any, ...] = ()
    """Fixed filter, in Tryton's domain syntax."""
    stamps: tuple[str, ...] = ("last_modified_at",)
    """Timestamps a net-change read polls (a record is read when any is at or after the watermark); the
    watermark is the largest of them read back."""
    stamp_models: tuple[str, ...] = ()
    """The model behind each of ``stamps`` (the stream's own model when empty): their newest stamps when a read
    starts cap its watermark, so that a change made while a long read pages through ids is read again next time."""
    shape: Shape = _identity
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def stamped_models(self) -> tuple[str, ...]:
        return self.stamp_models or (self.model,)


def flatten(value: Any) -> Any:
    """Tryton's ``"name.": {...}`` answers merged into ``"name": {...}`` (the bare id is kept as ``id`` inside)."""
    if isinstance(value, list):
        return [flatten(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key.endswith("."):
            name = key[:-1]
            out[name] = flatten(item)
        elif key not in out:
            out[key] = flatten(item)
    return out


def stamps_of(record: dict[str, Any], paths: tuple[str, ...]) -> list[str]:
    """Every timestamp at the given dotted paths of a flattened record (through lists too)."""
    found: list[str] = []

    def walk(value: Any, parts: list[str]) -> None:
        if isinstance(value, list):
            for element in value:
                walk(element, parts)
        elif not parts:
            if isinstance(value, str):
                found.append(value)
        elif isinstance(value, dict):
            walk(value.get(parts[0]), parts[1:])

    for path in paths:
        walk(record, path.split("."))
    return found


def _item_supplier(record: dict[str, Any]) -> dict[str, Any]:
    product = record.get("product") or {}
    variants = (record.get("template") or {}).get("products") or []
    code = product.get("code") if product else (variants[0].get("code") if len(variants) == 1 else None)
    prices = sorted(record.get("prices") or [], key=lambda price: float(price.get("quantity") or 0))
    return {**record, "item_code": code, "unit_price": prices[0].get("unit_price") if prices else None}


def _bill_of_material(record: dict[str, Any]) -> dict[str, Any]:
    outputs = record.get("outputs") or []
    return {**record, "output": outputs[0] if outputs else None}


def _purchase_order(record: dict[str, Any]) -> dict[str, Any]:
    lines = []
    for line in record.get("lines") or []:
        if line.get("type", "line") != "line" or not line.get("product"):
            continue  # comments, titles and subtotals carry no supply
        moves = [move for move in line.get("moves") or [] if move.get("state") != "cancelled"]
        if moves:
            deliveries = [{"id": move["id"], "date": move.get("planned_date") or line.get("delivery_date")
                           or record.get("delivery_date") or record.get("purchase_date"),
                           "quantity": move.get("quantity"), "unit": move.get("unit"), "state": move.get("state")}
                          for move in moves]
        else:  # not confirmed yet: the line is one delivery on its delivery date
            deliveries = [{"id": line["id"], "date": line.get("delivery_date") or record.get("delivery_date")
                           or record.get("purchase_date"), "quantity": line.get("quantity"),
                           "unit": line.get("unit"), "state": "draft"}]
        lines.append({**line, "deliveries": deliveries})
    return {**record, "lines": lines}


def _item_location(record: dict[str, Any]) -> dict[str, Any]:
    location = record.get("location") or {}
    warehouse = location if location.get("type") == "warehouse" else location.get("parent")
    return {**record, "warehouse": warehouse}


_NUMBERED: tuple[Any, ...] = (("number", "!=", None),)
"""Purchases get a number when quoted, productions when they leave draft: before that they are not orders."""

STREAMS: dict[str, Stream] = {stream.name: stream for stream in (
    Stream("item", "product.product", (
        "code", "active", "cost_price", "default_uom.symbol", "default_uom.name", "last_modified_at",
        "template.code", "template.name", "template.type", "template.producible", "template.purchasable",
        "template.consumable", "template.purchase_uom.symbol", "template.list_price", "template.active",
        "template.last_modified_at",
    ), stamps=("last_modified_at", "template.last_modified_at"), stamp_models=("product.product", "product.template"),
        context={"active_test": False}),
    Stream("supplier", "party.party", (
        "code", "name", "active", "addresses.country.code", "last_modified_at",
    ), stamps=("last_modified_at", "addresses.last_modified_at"), stamp_models=("party.party", "party.address"),
        context={"active_test": False}),
    Stream("item_supplier", "purchase.product_supplier", (
        "template.code", "template.products.code", "product.code", "party.code", "party.name", "code", "name",
        "lead_time", "currency.code", "prices.quantity", "prices.unit_price", "prices.last_modified_at",
        "last_modified_at",
    ), stamps=("last_modified_at", "prices.last_modified_at"),
        stamp_models=("purchase.product_supplier", "purchase.product_supplier.price"), shape=_item_supplier),
    Stream("item_location", "stock.order_point", (
        "product.code", "product.template.producible", "type", "location.code", "location.type",
        "location.parent.code", "location.parent.type", "min_quantity", "target_quantity", "unit.symbol",
        "last_modified_at",
    ), shape=_item_location),
    Stream("location", "stock.location", (
        "code", "name", "type", "active", "parent.code", "parent.type", "last_modified_at",
    ), domain=(("type", "in", ["warehouse", "storage"]), ("code", "!=", None)), context={"active_test": False}),
    Stream("bill_of_material", "production.bom", (
        "name", "active", "inputs.product.code", "inputs.quantity", "inputs.unit.symbol",
        "inputs.last_modified_at", "outputs.product.code", "outputs.quantity", "outputs.unit.symbol",
        "outputs.last_modified_at", "last_modified_at",
    ), stamps=("last_modified_at", "inputs.last_modified_at", "outputs.last_modified_at"),
        stamp_models=("production.bom", "production.bom.input", "production.bom.output"), shape=_bill_of_material),
    Stream("routing", "product.product-production.bom", (
        "sequence", "product.code", "bom.name", "routing.name", "routing.active", "routing.steps.sequence",
        "routing.steps.operation.name", "routing.steps.last_modified_at", "routing.last_modified_at",
        "last_modified_at",
    ), domain=(("routing", "!=", None),),
        stamps=("last_modified_at", "routing.last_modified_at", "routing.steps.last_modified_at"),
        stamp_models=("product.product-production.bom", "production.routing", "production.routing.step")),
    Stream("purchase_order", "purchase.purchase", (
        "number", "reference", "state", "party.code", "purchase_date", "delivery_date", "currency.code",
        "warehouse.code", "lines.type", "lines.product.code", "lines.quantity", "lines.unit.symbol",
        "lines.unit_price", "lines.delivery_date", "lines.moves.planned_date", "lines.moves.quantity",
        "lines.moves.unit.symbol", "lines.moves.state", "lines.last_modified_at", "last_modified_at",
    ), domain=_NUMBERED, stamps=("last_modified_at", "lines.last_modified_at"),
        stamp_models=("purchase.purchase", "purchase.line"), shape=_purchase_order),
    Stream("production_order", "production", (
        "number", "reference", "state", "product.code", "bom.name", "routing.name", "quantity", "unit.symbol",
        "warehouse.code", "planned_date", "planned_start_date", "effective_date", "effective_start_date",
        "inputs.product.code", "inputs.quantity", "inputs.unit.symbol", "inputs.planned_date", "inputs.state",
        "inputs.last_modified_at", "last_modified_at",
    ), domain=_NUMBERED, stamps=("last_modified_at", "inputs.last_modified_at"),
        stamp_models=("production", "stock.move")),
)}

INVENTORY = "inventory_balance"
INVENTORY_FIELDS = ("code", "quantity", "forecast_quantity", "default_uom.symbol")
STORAGE_FIELDS = ("code", "name", "type", "parent.code")
