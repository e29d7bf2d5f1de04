"""Transactions: stock, the movements that change it, and the open orders planning nets against it.

What execution reports back about orders (completions, supplier confirmations, shipments) is in
:mod:`syncfabric.model.execution`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from syncfabric.model.base import (
    Code,
    CurrencyCode,
    Line,
    NonNegative,
    OptionalCode,
    PositiveQuantity,
    Quantity,
    Record,
    UtcDateTime,
    check_period,
    check_unique,
)

Priority = Annotated[int, msgspec.Meta(ge=0)]
"""Lower is more important, as in frePPLe and most planning systems."""


class InventoryBalance(Record, frozen=True, kw_only=True):
    """Stock of one item at one location (optionally one lot), split by availability."""

    entity = "inventory_balance"
    key_fields = ("item_id", "location_id", "lot")
    domain = "transactions"
    references = {"item_id": "item", "location_id": "location"}

    item_id: Code
    location_id: Code
    lot: OptionalCode = ""
    on_hand: Quantity
    allocated: Quantity | None = None
    in_inspection: Quantity | None = None
    as_of: UtcDateTime
    """When the balance is true: a snapshot's read time, or the time of its last change."""
    changed_at: UtcDateTime | None = None
    """When the balance last changed at the source (its newest movement), when the source says so. A snapshot
    stamps ``as_of`` with its read time, which tells how fresh the balance is, not how long its change took to
    arrive: latency is measured from this time where it is known."""
    blocked: Quantity | None = None
    """Stock that may not be used (blocked stock, quarantine location)."""
    in_transit: Quantity | None = None
    """Stock shipped to this location and not yet received (stock transfer in transit)."""


MovementType = Literal[
    "receipt", "issue", "transfer_in", "transfer_out", "production_receipt", "production_issue",
    "scrap", "customer_return", "supplier_return", "adjustment",
]
_INBOUND = frozenset({"receipt", "transfer_in", "production_receipt", "customer_return"})
_OUTBOUND = frozenset({"issue", "transfer_out", "production_issue", "scrap", "supplier_return"})


class InventoryMovement(Record, frozen=True, kw_only=True):
    """One posted stock movement (goods receipt, issue, transfer, adjustment): an append-only fact.

    ``quantity`` is signed from the location's point of view: positive adds stock, negative removes it. Inbound
    movement types must be positive, outbound ones negative; an adjustment may be either.
    """

    entity = "inventory_movement"
    key_fields = ("movement_id",)
    domain = "transactions"
    references = {"item_id": "item", "location_id": "location"}

    movement_id: Code
    item_id: Code
    location_id: Code
    quantity: Quantity
    movement_type: MovementType
    lot: OptionalCode = ""
    posted_at: UtcDateTime
    reference: str | None = None
    """The document that caused it: a purchase, production or sales order number, a delivery."""
    reason_code: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        value = self.quantity.value
        if value == 0:
            raise ValueError("quantity must not be zero")
        if self.movement_type in _INBOUND and value < 0:
            raise ValueError(f"quantity of a {self.movement_type} must be positive, got {self.quantity}")
        if self.movement_type in _OUTBOUND and value > 0:
            raise ValueError(f"quantity of a {self.movement_type} must be negative, got {self.quantity}")


class DemandLine(Line, frozen=True, kw_only=True):
    """One line of a sales order: what a customer wants, where and when (a frePPLe demand)."""

    line_id: Code
    item_id: Code
    location_id: Code
    """The shipping location."""
    quantity: PositiveQuantity
    due_date: dt.date
    priority: Priority = 10
    status: Literal["quote", "open", "partially_shipped", "shipped", "closed", "cancelled"] = "open"
    shipped_quantity: Quantity | None = None


class SalesOrder(Record, frozen=True, kw_only=True):
    """A customer order: the firm demand planning must meet, line by line."""

    entity = "sales_order"
    key_fields = ("order_id",)
    domain = "transactions"
    references = {"lines.item_id": "item", "lines.location_id": "location"}

    order_id: Code
    customer_id: str | None = None
    order_date: dt.date | None = None
    status: Literal["open", "closed", "cancelled"] = "open"
    lines: Annotated[list[DemandLine], msgspec.Meta(min_length=1)]

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unique((line.line_id for line in self.lines), "line_id")


class ScheduleLine(Line, frozen=True, kw_only=True):
    """A delivery of part of a purchase order line on one date."""

    schedule_id: Code
    delivery_date: dt.date
    quantity: PositiveQuantity
    confirmed_quantity: Quantity | None = None
    """What the supplier confirmed for this date, if it has."""


class PurchaseOrderLine(Line, frozen=True, kw_only=True):
    """One item ordered from the supplier, delivered to one location on one or more schedule lines."""

    line_id: Code
    item_id: Code
    location_id: Code
    quantity: PositiveQuantity
    unit_price: NonNegative | None = None
    received_quantity: Quantity | None = None
    status: Literal["open", "received", "closed", "cancelled"] = "open"
    schedule: Annotated[list[ScheduleLine], msgspec.Meta(min_length=1)]

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unique((line.schedule_id for line in self.schedule), "schedule_id")


class PurchaseOrder(Record, frozen=True, kw_only=True):
    """An order to a supplier: open supply planning counts on, line by line and date by date."""

    entity = "purchase_order"
    key_fields = ("order_id",)
    domain = "transactions"
    references = {"supplier_id": "supplier", "lines.item_id": "item", "lines.location_id": "location"}

    order_id: Code
    supplier_id: Code
    order_date: dt.date | None = None
    currency: CurrencyCode | None = None
    status: Literal["draft", "sent", "confirmed", "partially_received", "received", "closed", "cancelled"] = "sent"
    lines: Annotated[list[PurchaseOrderLine], msgspec.Meta(min_length=1)]

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unique((line.line_id for line in self.lines), "line_id")


class ComponentRequirement(Line, frozen=True, kw_only=True):
    """A component a production order needs, and by when (a reservation)."""

    line_id: Code
    item_id: Code
    quantity: PositiveQuantity
    required_date: dt.date
    location_id: Code | None = None
    """Where it is issued from; the order's location when absent."""
    issued_quantity: Quantity | None = None
    operation_id: str | None = None


class ProductionOrder(Record, frozen=True, kw_only=True):
    """An order to make an item at a plant: supply of the item, demand for its components, load on work centers."""

    entity = "production_order"
    key_fields = ("order_id",)
    domain = "transactions"
    references = {"item_id": "item", "location_id": "location", "components.item_id": "item"}

    order_id: Code
    item_id: Code
    location_id: Code
    quantity: PositiveQuantity
    completed_quantity: Quantity | None = None
    scrap_quantity: Quantity | None = None
    start_date: dt.date
    due_date: dt.date
    status: Literal["planned", "released", "in_progress", "completed", "closed", "cancelled"] = "released"
    bom_alternative: str | None = None
    routing_alternative: str | None = None
    sales_order_id: str | None = None
    """The sales order it is made for (make to order)."""
    components: list[ComponentRequirement] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_period(self.start_date, self.due_date, "start_date", "due_date")
        check_unique((line.line_id for line in self.components), "components line_id")
