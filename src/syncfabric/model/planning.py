"""Planning: what the planning platform is told to expect (forecasts, targets) and what it recommends back.

A plan run is one execution of the planning engine; the planned orders it proposes flow back to the ERP after a
planner approves them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from syncfabric.model.base import (
    Code,
    NonNegativeQuantity,
    Percent,
    PositiveQuantity,
    Record,
    UtcDateTime,
    check_period,
)


class PlanRun(Record, frozen=True, kw_only=True):
    """One run of the planning engine over a horizon; its planned orders and targets carry its id."""

    entity = "plan_run"
    key_fields = ("plan_run_id",)
    domain = "planning"

    plan_run_id: Code
    planning_system: str | None = None
    started_at: UtcDateTime
    finished_at: UtcDateTime | None = None
    horizon_start: dt.date
    horizon_end: dt.date
    status: Literal["running", "completed", "failed", "cancelled"] = "running"
    plan_cut_sequence: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """The change-log sequence of the plan-cut the run was fed: the exact state of every domain it planned on."""
    description: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_period(self.horizon_start, self.horizon_end, "horizon_start", "horizon_end")
        if self.finished_at is not None and self.finished_at < self.started_at:
            raise ValueError("finished_at must not be before started_at")


class Forecast(Record, frozen=True, kw_only=True):
    """Expected demand of an item at a location for one period (both ends of the period included)."""

    entity = "forecast"
    key_fields = ("item_id", "location_id", "forecast_type", "period_start")
    domain = "planning"
    references = {"item_id": "item", "location_id": "location"}

    item_id: Code
    location_id: Code
    forecast_type: Literal["statistical", "baseline", "sales", "consensus", "override", "final"] = "final"
    period_start: dt.date
    period_end: dt.date
    quantity: NonNegativeQuantity
    customer_id: str | None = None
    """The customer or customer group it is for, when forecasts are by customer."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_period(self.period_start, self.period_end, "period_start", "period_end")


class SafetyStockTarget(Record, frozen=True, kw_only=True):
    """The stock to keep of an item at a location from a date on, set by a planner or computed by a plan run."""

    entity = "safety_stock_target"
    key_fields = ("item_id", "location_id", "valid_from")
    domain = "planning"
    references = {"item_id": "item", "location_id": "location", "plan_run_id": "plan_run"}

    item_id: Code
    location_id: Code
    valid_from: dt.date
    valid_to: dt.date | None = None
    quantity: NonNegativeQuantity
    method: Literal["manual", "statistical", "days_of_supply"] = "manual"
    service_level_percent: Percent | None = None
    plan_run_id: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_period(self.valid_from, self.valid_to, "valid_from", "valid_to")


class PlannedOrder(Record, frozen=True, kw_only=True):
    """A recommendation of a plan run: buy from a supplier, make at a plant, or transfer from another location.

    ``status`` follows it through planner review: proposed → approved (or rejected) → released, when the ERP order
    it became is known as ``released_as``.
    """

    entity = "planned_order"
    key_fields = ("planned_order_id",)
    domain = "planning"
    references = {
        "plan_run_id": "plan_run",
        "item_id": "item",
        "location_id": "location",
        "supplier_id": "supplier",
        "source_location_id": "location",
    }

    planned_order_id: Code
    plan_run_id: str | None = None
    order_type: Literal["buy", "make", "transfer"]
    item_id: Code
    location_id: Code
    """Where the supply is received."""
    supplier_id: Code | None = None
    """The supplier of a buy order, when the planning system picked one."""
    source_location_id: Code | None = None
    quantity: PositiveQuantity
    start_date: dt.date
    """When to order, start production or ship."""
    due_date: dt.date
    """When the supply is available at ``location_id``."""
    firm: bool = False
    """Planning must not move or resize it."""
    status: Literal["proposed", "approved", "released", "rejected"] = "proposed"
    released_as: str | None = None
    demand_reference: str | None = None
    """The demand it covers (pegging), when the planning system reports it."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_period(self.start_date, self.due_date, "start_date", "due_date")
        if self.order_type == "transfer":
            if self.source_location_id is None:
                raise ValueError("a transfer order needs a source_location_id")
            if self.source_location_id == self.location_id:
                raise ValueError("a transfer order's source_location_id must differ from location_id")
