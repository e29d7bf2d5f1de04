"""Business events: append-only facts from plants, suppliers and planners that planning should react to.

Events are never updated in place. A later event that changes or closes an earlier one (a machine back up, a
hold released) is a new event that names the earlier one in ``related_event_id``.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from syncfabric.model.base import (
    Code,
    NonNegativeQuantity,
    OptionalCode,
    PositiveQuantity,
    Record,
    UtcDateTime,
    check_period,
)


class BusinessEvent(Record, frozen=True, kw_only=True):
    """Base of the business events: its own id, when it happened, where, and which system said so."""

    key_fields = ("event_id",)
    domain = "events"

    event_id: Code
    occurred_at: UtcDateTime
    location_id: Code
    """The site the event concerns."""
    source_system: str | None = None
    related_event_id: str | None = None
    """The earlier event this one updates or closes."""


class MachineDowntime(BusinessEvent, frozen=True, kw_only=True):
    """A work center stopped (or, with ``ended_at``, runs again): capacity planning must take it out."""

    entity = "machine_downtime"
    references = {"location_id": "location", "work_center_id": "work_center"}

    work_center_id: Code
    started_at: UtcDateTime
    expected_end: UtcDateTime | None = None
    ended_at: UtcDateTime | None = None
    """Set by the event that reports the machine running again."""
    reason_code: Code
    planned: bool = False
    """Planned maintenance rather than a breakdown."""
    description: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("expected_end", "ended_at"):
            end = getattr(self, name)
            if end is not None and end < self.started_at:
                raise ValueError(f"{name} must not be before started_at")


class SupplierDelay(BusinessEvent, frozen=True, kw_only=True):
    """A supplier announces that a purchase order (line) will arrive later than agreed."""

    entity = "supplier_delay"
    references = {"location_id": "location", "supplier_id": "supplier", "purchase_order_id": "purchase_order",
                  "item_id": "item"}

    supplier_id: Code
    purchase_order_id: Code
    line_id: str | None = None
    """The purchase order line; the whole order when absent."""
    item_id: str | None = None
    quantity: PositiveQuantity | None = None
    """The quantity delayed; all that is open when absent."""
    original_date: dt.date
    new_date: dt.date
    reason_code: str | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.new_date <= self.original_date:
            raise ValueError(f"new_date ({self.new_date}) must be after original_date ({self.original_date})")


class QualityHold(BusinessEvent, frozen=True, kw_only=True):
    """Stock put on quality hold (or released from it): planning must not count on it while held."""

    entity = "quality_hold"
    references = {"location_id": "location", "item_id": "item"}

    hold_id: Code
    """The quality notification or inspection lot; the hold and its release share it."""
    item_id: Code
    lot: OptionalCode = ""
    quantity: NonNegativeQuantity | None = None
    """The quantity held; the whole lot (or all stock of the item) when absent."""
    status: Literal["hold", "released", "scrapped"] = "hold"
    reason_code: str | None = None
    reason: str = ""


class DemandSpike(BusinessEvent, frozen=True, kw_only=True):
    """Demand well above forecast, seen or expected for an item at a location within a window."""

    entity = "demand_spike"
    references = {"location_id": "location", "item_id": "item"}

    item_id: Code
    quantity: PositiveQuantity
    """The extra demand over the forecast within the window."""
    window_start: dt.date
    window_end: dt.date
    customer_id: str | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_period(self.window_start, self.window_end, "window_start", "window_end")
