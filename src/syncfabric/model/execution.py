"""Execution feedback: what plants, suppliers and carriers report about open orders.

Production completions, supplier confirmations, advance shipping notices and shipment milestones are transactions
(domain ``transactions``) that come after the orders they refer to, so they follow
:mod:`syncfabric.model.transactions` in the registry.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from syncfabric.model.base import (
    Code,
    Line,
    NonNegativeQuantity,
    OptionalCode,
    PositiveQuantity,
    Record,
    UtcDateTime,
    check_unique,
)


class ProductionCompletion(Record, frozen=True, kw_only=True):
    """A confirmation from the shop floor: good and scrapped output of a production order, or of one operation.

    An append-only fact: each report has its own id, and the order's progress is the sum of its completions.
    """

    entity = "production_completion"
    key_fields = ("completion_id",)
    domain = "transactions"
    references = {
        "production_order_id": "production_order",
        "item_id": "item",
        "location_id": "location",
        "work_center_id": "work_center",
    }

    completion_id: Code
    production_order_id: Code
    operation_id: str | None = None
    """The operation confirmed; absent for a confirmation of the whole order."""
    work_center_id: str | None = None
    item_id: Code
    location_id: Code
    good_quantity: NonNegativeQuantity
    scrap_quantity: NonNegativeQuantity | None = None
    lot: OptionalCode = ""
    completed_at: UtcDateTime
    final: bool = False
    """The last confirmation: the order (or operation) is finished."""

    def __post_init__(self) -> None:
        super().__post_init__()
        scrap = self.scrap_quantity
        if scrap is not None and scrap.unit != self.good_quantity.unit:
            raise ValueError(f"scrap_quantity unit {scrap.unit!r} differs from good_quantity unit")
        if self.good_quantity.value == 0 and (scrap is None or scrap.value == 0):
            raise ValueError("a completion must report a good or a scrap quantity")


class SupplierConfirmation(Record, frozen=True, kw_only=True):
    """The supplier's latest answer on one purchase order schedule line: how much it will deliver, and when.

    Keyed by the schedule line it answers (``schedule_id`` ``""`` when the supplier confirms the line as a
    whole), so a new confirmation replaces the previous one and the change log keeps the history.
    """

    entity = "supplier_confirmation"
    key_fields = ("purchase_order_id", "line_id", "schedule_id")
    domain = "transactions"
    references = {"purchase_order_id": "purchase_order", "supplier_id": "supplier"}

    purchase_order_id: Code
    line_id: Code
    schedule_id: OptionalCode = ""
    supplier_id: Code
    status: Literal["accepted", "changed", "rejected"] = "accepted"
    confirmed_quantity: NonNegativeQuantity
    confirmed_date: dt.date
    confirmed_at: UtcDateTime
    """When the supplier sent it."""
    supplier_reference: str | None = None
    """The supplier's own document number (its order acknowledgement)."""


class ShipmentLine(Line, frozen=True, kw_only=True):
    """An item in a shipment, with the purchase order line it delivers when there is one."""

    line_id: Code
    item_id: Code
    quantity: PositiveQuantity
    lot: OptionalCode = ""
    purchase_order_id: str | None = None
    purchase_order_line_id: str | None = None


class ShipmentNotice(Record, frozen=True, kw_only=True):
    """An advance shipping notice (ASN, DESADV): goods on their way to one of our locations.

    From a supplier (``supplier_id``), or between our own locations (``from_location_id``); at least one is given.
    """

    entity = "shipment_notice"
    key_fields = ("shipment_id",)
    domain = "transactions"
    references = {
        "supplier_id": "supplier",
        "from_location_id": "location",
        "to_location_id": "location",
        "lines.item_id": "item",
        "lines.purchase_order_id": "purchase_order",
    }

    shipment_id: Code
    supplier_id: Code | None = None
    from_location_id: Code | None = None
    to_location_id: Code
    carrier: str | None = None
    tracking_number: str | None = None
    shipped_at: UtcDateTime | None = None
    expected_arrival: UtcDateTime
    status: Literal["announced", "in_transit", "arrived", "received", "cancelled"] = "announced"
    lines: Annotated[list[ShipmentLine], msgspec.Meta(min_length=1)]

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.supplier_id is None and self.from_location_id is None:
            raise ValueError("a shipment needs a supplier_id or a from_location_id")
        if self.shipped_at is not None and self.expected_arrival < self.shipped_at:
            raise ValueError("expected_arrival must not be before shipped_at")
        check_unique((line.line_id for line in self.lines), "line_id")


Milestone = Literal[
    "booked", "picked_up", "departed", "in_transit", "arrived_port", "customs_entry", "customs_hold",
    "customs_cleared", "out_for_delivery", "delivered", "exception",
]


class ShipmentMilestone(Record, frozen=True, kw_only=True):
    """A tracking event of a shipment reported by a carrier or logistics platform: an append-only fact.

    Keyed by shipment, milestone and time, so the same report delivered twice is one record.
    """

    entity = "shipment_milestone"
    key_fields = ("shipment_id", "milestone", "occurred_at")
    domain = "transactions"
    references = {"shipment_id": "shipment_notice", "location_id": "location"}

    shipment_id: Code
    milestone: Milestone
    occurred_at: UtcDateTime
    location_id: Code | None = None
    """Our location, when the milestone happens at one."""
    place: str | None = None
    """Where it happened otherwise (a port, a hub, a UN/LOCODE)."""
    carrier: str | None = None
    estimated_arrival: UtcDateTime | None = None
    """The carrier's updated arrival estimate."""
    detail: str = ""
