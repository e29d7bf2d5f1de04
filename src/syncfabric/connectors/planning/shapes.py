"""Canonical records in the planning platform's (frePPLe's) shape.

One :class:`Shape` per canonical entity says which frePPLe entity it becomes, how its canonical key becomes the
frePPLe natural key, which fields it writes, and what a deletion sends. A new canonical entity plugs in with one
``build`` function and one line in :data:`SHAPES`.

Two canonical entities may write parts of one frePPLe record: ``item_location`` sets a buffer's safety stock
(``minimum``) and ``inventory_balance`` its ``onhand``. Such shapes are ``partial``: they send only their fields
(the platform merges), and deleting the canonical record clears those fields instead of deleting the buffer.

Quantities are sent as they are in the canonical record, which mapping has already put in the item's base unit
(frePPLe plans every item in one unit). Durations are frePPLe's REST text ``D HH:MM:SS``.

Orders with lines (sales and purchase orders) become one frePPLe record per line (:class:`LinesShape`); the
connector finds the lines an order no longer has by reading the order's records and deletes them.

Calendars, bills of material, routings and forecasts become several frePPLe entities each
(:mod:`.composite`); a production order is a manufacturing order of its BOM's operation.

Not shaped yet: safety stock targets (they compete with ``item_location`` for a buffer's ``minimum``), units and
unit conversions (frePPLe has no such tables), plan runs and planned orders (they come from planning).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from syncfabric.connectors.base import OutboundRecord
from syncfabric.model import KEY_SEPARATOR

Canonical = Mapping[str, Any]
"""A canonical record as builtins (``msgspec.to_builtins``): Decimals as text, Quantities as ``{value, unit}``."""
Method = Literal["PUT", "DELETE"]


@dataclass(frozen=True)
class Shape:
    """How one canonical entity is written to the platform."""

    target: str
    """The frePPLe entity (``/api/<app>/<target>/``)."""
    key_fields: tuple[str, ...]
    """The frePPLe fields the canonical key's parts fill, in order."""
    fields: tuple[str, ...]
    """The frePPLe fields this entity writes besides its key; read back for reconciliation."""
    build: Callable[[Canonical], Any]
    """Canonical record → the frePPLe record (a dict); for a :class:`LinesShape`, the list of its records."""
    fixed: Mapping[str, str] = field(default_factory=dict)
    """frePPLe key fields with a constant value (a buffer's ``batch`` for item-location parameters)."""
    partial: bool = False
    """Other canonical entities write other fields of the same frePPLe record."""
    parent: str | None = None
    """A canonical field naming a parent of the same entity, which must be written first (location hierarchy)."""
    app: str = "input"

    def key(self, canonical_key: str) -> dict[str, str]:
        """The frePPLe natural key of a canonical key."""
        parts = canonical_key.split(KEY_SEPARATOR)
        if len(parts) != len(self.key_fields):
            raise ValueError(f"key {canonical_key!r} does not have the {len(self.key_fields)} parts of {self.target}")
        return {**dict(zip(self.key_fields, parts, strict=True)), **self.fixed}

    def canonical_key(self, record: Mapping[str, Any]) -> str | None:
        """The canonical key a frePPLe record holds, or None when it holds none of this entity."""
        if any((record.get(name) or "") != value for name, value in self.fixed.items()):
            return None
        if self.partial and all(record.get(name) is None for name in self.fields):
            return None
        return KEY_SEPARATOR.join(str(record.get(name) or "") for name in self.key_fields)

    def payloads(self, record: Canonical) -> list[dict[str, Any]]:
        """The frePPLe records (key and this entity's fields) for a canonical record: one, except for orders with
        lines (:class:`LinesShape`)."""
        body = self.build(record)  # a new dict per call
        if self.fixed:
            body.update(self.fixed)
        return [body]

    def owns(self, canonical_key: str, payload: Mapping[str, Any]) -> bool:
        """Whether ``payload`` is a frePPLe record of this canonical key (a payload must match its key)."""
        if len(self.key_fields) == 1 and not self.fixed:  # the common case, without building the key's dict
            if KEY_SEPARATOR in canonical_key:
                self.key(canonical_key)  # raises: the key has more parts than the target's key
            return bool(payload.get(self.key_fields[0]) == canonical_key)
        return all(payload.get(name) == value for name, value in self.key(canonical_key).items())

    def lines_filter(self, canonical_key: str) -> dict[str, str] | None:
        """The query that finds every frePPLe record of a canonical key, when there may be several."""
        return None

    def deletion(self, canonical_key: str) -> tuple[Method, dict[str, Any]]:
        """What to send when the canonical record is deleted: a DELETE of the key, or for a partial shape a PUT
        that clears this entity's fields and leaves the others' alone."""
        key = self.key(canonical_key)
        if self.partial:
            return "PUT", {**key, **dict.fromkeys(self.fields)}
        return "DELETE", key

    def project(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The part of a frePPLe record this entity accounts for, with the platform's change metadata."""
        names = (*self.key_fields, *self.fixed, *self.fields, "source", "lastmodified", "_versions")
        return {name: record[name] for name in names if name in record}


@dataclass(frozen=True)
class SuffixedNameShape(Shape):
    """A frePPLe record named ``<id> @ <location>`` for a canonical key ``id|location`` (resources are unique by
    name alone in frePPLe, work centers only within their plant)."""

    def key(self, canonical_key: str) -> dict[str, str]:
        ident, separator, location = canonical_key.partition(KEY_SEPARATOR)
        if not separator or KEY_SEPARATOR in location:
            raise ValueError(f"key {canonical_key!r} is not <id>|<location>")
        return {"name": suffixed(ident, location)}

    def owns(self, canonical_key: str, payload: Mapping[str, Any]) -> bool:
        return bool(payload.get("name") == self.key(canonical_key)["name"])

    def canonical_key(self, record: Mapping[str, Any]) -> str | None:
        name, location = str(record.get("name") or ""), str(record.get("location") or "")
        suffix = f" @ {location}"
        if not location or not name.endswith(suffix):
            return None
        return f"{name[: -len(suffix)]}{KEY_SEPARATOR}{location}"


def suffixed(ident: str, location: str) -> str:
    return f"{ident} @ {location}"


@dataclass(frozen=True)
class LinesShape(Shape):
    """One frePPLe record per line of a canonical order: a sales order line becomes a demand, a purchase order
    schedule line a purchase order. Line records are named ``<order>|<line>[|<schedule>]``; the order id never
    contains ``|``, so the text before the first ``|`` names the order exactly. When an order loses a line, or is
    deleted, the records of the lines it no longer has are deleted."""

    def key(self, canonical_key: str) -> dict[str, str]:
        raise ValueError(f"{self.target} records of an order are found by lines_filter, not by one key")

    def payloads(self, record: Canonical) -> list[dict[str, Any]]:
        return [{**line, **self.fixed} for line in self.build(record)]

    def owns(self, canonical_key: str, payload: Mapping[str, Any]) -> bool:
        return self.canonical_key(payload) == canonical_key

    def canonical_key(self, record: Mapping[str, Any]) -> str | None:
        order, separator, _ = str(record.get(self.key_fields[0]) or "").partition(KEY_SEPARATOR)
        return order if separator else None

    def lines_filter(self, canonical_key: str) -> dict[str, str]:
        """frePPLe filters names by ``contains``, not by prefix; the caller keeps the records whose
        :meth:`canonical_key` is the order's."""
        return {f"{self.key_fields[0]}__contains": canonical_key + KEY_SEPARATOR}

    def deletion(self, canonical_key: str) -> tuple[Method, dict[str, Any]]:
        raise ValueError("an order's records are deleted line by line")


def line_name(*parts: str) -> str:
    return KEY_SEPARATOR.join(parts)


# ---- value conversions -------------------------------------------------------------------------------------


def number(value: Any) -> float | None:
    """A canonical Decimal (text) or Quantity (``{value, unit}``) as a JSON number."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = value["value"]
    return float(Decimal(str(value)))


def duration(days: Any) -> str | None:
    """Days as frePPLe's REST duration text, as Django writes it: ``3 00:00:00``, ``12:00:00``."""
    if days is None:
        return None
    return duration_text(dt.timedelta(days=float(Decimal(str(days)))))


def duration_text(delta: dt.timedelta) -> str:
    """A time span as frePPLe's REST duration text."""
    minutes, seconds = divmod(delta.seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if delta.days:
        text = f"{delta.days} {text}"
    if delta.microseconds:
        text += f".{delta.microseconds:06d}"
    return text


def subtract(total: Any, done: Any) -> float:
    """What is still open of a quantity, never below zero."""
    return max(0.0, (number(total) or 0.0) - (number(done) or 0.0))


def start_of(day: str | None) -> str | None:
    """A first valid date as the instant it starts."""
    return None if day is None else f"{dt.date.fromisoformat(day).isoformat()}T00:00:00"


def end_of(day: str | None) -> str | None:
    """A last valid date (inclusive) as frePPLe's exclusive end: the start of the next day."""
    return None if day is None else f"{(dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()}T00:00:00"


# ---- one build function per canonical entity ---------------------------------------------------------------


def _item(r: Canonical) -> dict[str, Any]:
    return {"name": r["item_id"], "description": r.get("description", ""), "uom": r["base_unit"],
            "category": r.get("category"), "subcategory": r.get("item_type"),
            "cost": number(r.get("unit_cost")), "weight": number(r.get("weight_kg"))}


def _location(r: Canonical) -> dict[str, Any]:
    return {"name": r["location_id"], "description": r.get("name", ""), "category": r["kind"],
            "owner": r.get("parent_id")}


def _supplier(r: Canonical) -> dict[str, Any]:
    return {"name": r["supplier_id"], "description": r.get("name", ""), "category": r.get("category")}


def _item_location(r: Canonical) -> dict[str, Any]:
    return {"item": r["item_id"], "location": r["location_id"], "minimum": number(r.get("safety_stock", "0"))}


def _item_supplier(r: Canonical) -> dict[str, Any]:
    price, per = number(r.get("unit_price")), number(r.get("price_unit")) or 1.0
    return {"item": r["item_id"], "supplier": r["supplier_id"], "location": r.get("location_id", ""),
            "leadtime": duration(r["lead_time_days"]), "sizeminimum": number(r.get("minimum")),
            "sizemultiple": number(r.get("multiple")), "sizemaximum": number(r.get("maximum")),
            "priority": number(r.get("priority", 1)), "cost": None if price is None else price / per,
            "effective_start": start_of(r.get("valid_from")), "effective_end": end_of(r.get("valid_to"))}


_HOURS = frozenset({"h", "hr", "hrs", "hour", "hours", "hur"})


def _work_center(r: Canonical) -> dict[str, Any]:
    """Capacity in hours is the work center's parallel units working its calendar (a frePPLe ``default``
    resource); capacity in output units is a daily bucket (``buckets_day``) of that size."""
    capacity = r["capacity_per_day"]
    in_hours = str(capacity["unit"]).lower() in _HOURS
    return {"name": suffixed(r["work_center_id"], r["location_id"]), "location": r["location_id"],
            "description": r.get("name", ""), "category": r.get("kind", "machine"),
            "type": "default" if in_hours else "buckets_day",
            "maximum": float(r.get("parallel_units", 1)) if in_hours else number(capacity),
            "efficiency": number(r.get("efficiency_percent", "100")), "constrained": r.get("constrained", True)}


def _inventory_balance(r: Canonical) -> dict[str, Any]:
    return {"item": r["item_id"], "location": r["location_id"], "batch": r.get("lot", ""),
            "onhand": number(r["on_hand"])}


_DEMAND_STATUS = {"quote": "quote", "open": "open", "partially_shipped": "open", "shipped": "closed",
                  "closed": "closed", "cancelled": "canceled"}
UNKNOWN_CUSTOMER = "(no customer)"
"""frePPLe needs a customer on every demand; orders without one are booked to this name."""


def _sales_order_lines(r: Canonical) -> list[dict[str, Any]]:
    """Demands plan what is still to ship; a closed or cancelled order closes every line."""
    closed = {"closed": "closed", "cancelled": "canceled"}.get(r.get("status", "open"))
    return [
        {"name": line_name(r["order_id"], line["line_id"]), "item": line["item_id"],
         "location": line["location_id"], "customer": r.get("customer_id") or UNKNOWN_CUSTOMER,
         "due": start_of(line["due_date"]), "quantity": subtract(line["quantity"], line.get("shipped_quantity")),
         "priority": float(line.get("priority", 10)), "status": closed or _DEMAND_STATUS[line.get("status", "open")]}
        for line in r["lines"]
    ]


def _purchase_order_lines(r: Canonical) -> list[dict[str, Any]]:
    """One frePPLe purchase order per schedule line, for the quantity not yet received (received quantity is
    taken from the earliest schedule lines first). Closed or cancelled lines become ``closed``."""
    order_closed = r.get("status") in ("closed", "cancelled")
    records = []
    for line in r["lines"]:
        received = number(line.get("received_quantity")) or 0.0
        line_closed = order_closed or line.get("status") in ("closed", "cancelled")
        for schedule in sorted(line["schedule"], key=lambda s: (s["delivery_date"], s["schedule_id"])):
            planned = number(schedule.get("confirmed_quantity")) or number(schedule["quantity"]) or 0.0
            taken = min(planned, received)
            received -= taken
            status = "closed" if line_closed else ("completed" if planned - taken <= 0 else "confirmed")
            records.append({
                "reference": line_name(r["order_id"], line["line_id"], schedule["schedule_id"]),
                "item": line["item_id"], "location": line["location_id"], "supplier": r["supplier_id"],
                "quantity": planned - taken, "startdate": start_of(r.get("order_date") or schedule["delivery_date"]),
                "enddate": start_of(schedule["delivery_date"]), "status": status,
            })
    return records


def operation_name(item_id: str, location_id: str, alternative: str | None = None) -> str:
    """The frePPLe operation of an item's bill of material at a plant (:mod:`.composite` writes it)."""
    name = f"{item_id} @ {location_id}"
    return f"{name} ({alternative})" if alternative else name


_PRODUCTION_STATUS = {"planned": "approved", "released": "confirmed", "in_progress": "confirmed",
                      "completed": "completed", "closed": "closed", "cancelled": "closed"}


def _production_order(r: Canonical) -> dict[str, Any]:
    """An open production order is a confirmed manufacturing order of its BOM's operation (which must be on the
    platform); a planned one is approved, not yet firm."""
    return {"reference": r["order_id"],
            "operation": operation_name(r["item_id"], r["location_id"], r.get("bom_alternative")),
            "quantity": number(r["quantity"]), "quantity_completed": number(r.get("completed_quantity")) or 0.0,
            "startdate": start_of(r["start_date"]), "enddate": start_of(r["due_date"]),
            "status": _PRODUCTION_STATUS[r.get("status", "released")]}


SHAPES: dict[str, Shape] = {
    "item": Shape("item", ("name",), ("description", "uom", "category", "subcategory", "cost", "weight"), _item),
    "location": Shape("location", ("name",), ("description", "category", "owner"), _location, parent="parent_id"),
    "supplier": Shape("supplier", ("name",), ("description", "category"), _supplier),
    "item_location": Shape("buffer", ("item", "location"), ("minimum",), _item_location, fixed={"batch": ""},
                           partial=True),
    "item_supplier": Shape("itemsupplier", ("item", "supplier", "location"),
                           ("leadtime", "sizeminimum", "sizemultiple", "sizemaximum", "priority", "cost",
                            "effective_start", "effective_end"), _item_supplier),
    "work_center": SuffixedNameShape("resource", ("name",),
                                     ("location", "description", "category", "type", "maximum", "efficiency",
                                      "constrained"), _work_center),
    "inventory_balance": Shape("buffer", ("item", "location", "batch"), ("onhand",), _inventory_balance,
                               partial=True),
    "sales_order": LinesShape("demand", ("name",),
                              ("item", "location", "customer", "due", "quantity", "priority", "status"),
                              _sales_order_lines),
    "purchase_order": LinesShape("purchaseorder", ("reference",),
                                 ("item", "location", "supplier", "quantity", "startdate", "enddate", "status"),
                                 _purchase_order_lines),
    "production_order": Shape("manufacturingorder", ("reference",),
                              ("operation", "quantity", "quantity_completed", "startdate", "enddate", "status"),
                              _production_order),
}
"""Canonical entity → how it is written, masters before the records that refer to them."""

TARGET_APPS: dict[str, str] = {"forecast": "forecast", "forecastplan": "forecast", "plannedorder": "output"}
"""frePPLe entities served outside ``/api/input/``."""


def shape_for(entity: str) -> Shape:
    try:
        return SHAPES[entity]
    except KeyError:
        raise KeyError(f"no planning shape for {entity!r}; shaped: {', '.join(SHAPES)}") from None


def parents_first(shape: Shape, records: Sequence[OutboundRecord]) -> list[OutboundRecord]:
    """``records`` reordered so that a parent written in the same call goes before its children.

    Records of one key keep their relative order (per-key order is never changed); without a parent field the
    order is unchanged.
    """
    if shape.parent is None:
        return list(records)
    by_key: dict[str, list[OutboundRecord]] = {}
    for record in records:
        by_key.setdefault(record.key, []).append(record)
    ordered: list[OutboundRecord] = []
    placed: set[str] = set()

    def place(key: str, path: frozenset[str]) -> None:
        if key in placed or key in path:  # already placed, or a cycle: keep the given order
            return
        for record in by_key[key]:
            parent = record.payload.get(shape.parent) if record.payload and shape.parent else None
            if isinstance(parent, str) and parent in by_key:
                place(parent, path | {key})
        placed.add(key)
        ordered.extend(by_key[key])

    for key in by_key:
        place(key, frozenset())
    return ordered
