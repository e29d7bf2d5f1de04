"""Transactions: orders, stock and the movements that change them."""

from __future__ import annotations

from syncfabric.model.base import Code, Quantity, Record, UtcDateTime


class InventoryBalance(Record, frozen=True, kw_only=True):
    """Stock of one item at one location (optionally one lot), split by availability."""

    entity = "inventory_balance"
    key_fields = ("item_id", "location_id", "lot")
    domain = "transactions"

    item_id: Code
    location_id: Code
    lot: str = ""
    on_hand: Quantity
    allocated: Quantity | None = None
    in_inspection: Quantity | None = None
    as_of: UtcDateTime
