"""Master data: the slow-changing facts planning is built on (items, locations, suppliers, structures)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from syncfabric.model.base import Code, NonNegative, Record

MakeOrBuy = Literal["make", "buy", "transfer"]


class Item(Record, frozen=True, kw_only=True):
    """A material or product, identified by its canonical item number."""

    entity = "item"
    key_fields = ("item_id",)
    domain = "master"

    item_id: Code
    description: str = ""
    base_unit: Code
    item_type: Literal["finished", "semi_finished", "raw", "packaging", "service"] = "raw"
    category: str | None = None
    status: Literal["active", "blocked", "obsolete"] = "active"
    unit_cost: NonNegative | None = None
    weight_kg: NonNegative | None = None


class Location(Record, frozen=True, kw_only=True):
    """A node of the location hierarchy: region → plant or site → warehouse → storage."""

    entity = "location"
    key_fields = ("location_id",)
    domain = "master"

    location_id: Code
    name: str = ""
    kind: Literal["region", "plant", "site", "warehouse", "storage", "distribution_center"]
    parent_id: Code | None = None
    time_zone: str = "UTC"
    country: str | None = None


class ItemLocation(Record, frozen=True, kw_only=True):
    """Planning parameters of one item at one location."""

    entity = "item_location"
    key_fields = ("item_id", "location_id")
    domain = "master"

    item_id: Code
    location_id: Code
    make_or_buy: MakeOrBuy = "buy"
    lead_time_days: NonNegative = Decimal(0)
    safety_stock: NonNegative = Decimal(0)
    lot_size_rule: Literal["lot_for_lot", "fixed", "multiple", "min_max", "period_of_supply"] = "lot_for_lot"
    lot_size: NonNegative | None = None
    planner: str | None = None
