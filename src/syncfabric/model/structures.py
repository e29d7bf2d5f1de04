"""Production structures: where things are made (work centers), from what (bills of material) and how (routings).

These are master data too (domain ``master``); they live apart from :mod:`syncfabric.model.master` because they
refer to items and locations, which come first in the registry.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from syncfabric.model.base import (
    Code,
    Line,
    NonNegative,
    OptionalCode,
    Percent,
    PositiveQuantity,
    Quantity,
    Record,
    check_period,
    check_unique,
)

TimeUnit = Literal["s", "min", "h", "d"]
Status = Literal["active", "inactive"]


class WorkCenter(Record, frozen=True, kw_only=True):
    """A machine, line or labour pool at a plant whose capacity planning loads (a resource, a workstation).

    Work center ids are unique within a plant, as in most ERPs, so the plant is part of the key.
    """

    entity = "work_center"
    key_fields = ("work_center_id", "location_id")
    domain = "master"
    references = {"location_id": "location", "calendar_id": "calendar"}

    work_center_id: Code
    location_id: Code
    name: str = ""
    kind: Literal["machine", "line", "labor", "cell", "subcontractor"] = "machine"
    capacity_per_day: PositiveQuantity
    """Available capacity on one working day, in hours (16 h) or in output units (5000 EA)."""
    efficiency_percent: NonNegative = Decimal(100)
    """Actual output against standard times: 85 means operations take 100/85 of their standard time."""
    parallel_units: Annotated[int, msgspec.Meta(ge=1)] = 1
    """Identical machines or crews that run at the same time."""
    calendar_id: Code | None = None
    """Working calendar; the plant's calendar when absent."""
    constrained: bool = True
    """False for capacity that planning may overload (infinite resource)."""
    status: Status = "active"


class BomLine(Line, frozen=True, kw_only=True):
    """A component of a bill of material, per ``base_quantity`` of the parent.

    A negative quantity is a by-product or co-product, as SAP and frePPLe write them.
    """

    line_id: Code
    """The item number in the source BOM (0010, 0020)."""
    component_id: Code
    quantity_per: Quantity
    scrap_percent: Percent = Decimal(0)
    """Extra component quantity lost in production: 5 means 105 % of ``quantity_per`` is issued."""
    fixed_quantity: bool = False
    """The quantity is per order, not per unit of the parent (a set-up kit)."""
    operation_id: str | None = None
    """The routing operation the component is issued to; the first one when absent."""
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.quantity_per.value == 0:
            raise ValueError("quantity_per must not be zero")
        check_period(self.valid_from, self.valid_to, "valid_from", "valid_to")


class BillOfMaterial(Record, frozen=True, kw_only=True):
    """The components that make an item, for one plant (``""``: every plant) and one alternative.

    Items often have several alternatives or versions (a second supplier's part, a new design from a date);
    ``priority`` and the validity dates tell planning which to use.
    """

    entity = "bill_of_material"
    key_fields = ("item_id", "location_id", "alternative")
    domain = "master"
    references = {"item_id": "item", "location_id": "location", "lines.component_id": "item"}

    item_id: Code
    location_id: OptionalCode = ""
    alternative: OptionalCode = ""
    """The alternative or version (SAP BOM alternative, Odoo BOM reference); ``""`` when an item has one BOM."""
    description: str = ""
    base_quantity: PositiveQuantity
    """The quantity of the parent the line quantities are for (1 EA, 100 KG)."""
    usage: Literal["production", "engineering", "costing", "maintenance"] = "production"
    status: Status = "active"
    priority: Annotated[int, msgspec.Meta(ge=0)] = 1
    """Lower is preferred among the alternatives valid on a date."""
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    lines: Annotated[list[BomLine], msgspec.Meta(min_length=1)]

    def __post_init__(self) -> None:
        super().__post_init__()
        check_period(self.valid_from, self.valid_to, "valid_from", "valid_to")
        check_unique((line.line_id for line in self.lines), "line_id")
        for index, line in enumerate(self.lines):
            if line.component_id == self.item_id:
                raise ValueError(f"lines[{index}].component_id is the parent item {self.item_id!r}")


class RoutingOperation(Line, frozen=True, kw_only=True):
    """One step of a routing, done at one work center."""

    sequence: Annotated[int, msgspec.Meta(ge=0)]
    """Order of the steps (10, 20, 30)."""
    operation_id: Code
    description: str = ""
    work_center_id: Code
    setup_time: NonNegative = Decimal(0)
    """Time once per order, before the first unit."""
    run_time_per_unit: NonNegative
    """Time per unit of the routing's item, in its base unit."""
    post_time: NonNegative = Decimal(0)
    """Waiting time after the step (cooling, drying, transport to the next step)."""
    time_unit: TimeUnit = "min"


class Routing(Record, frozen=True, kw_only=True):
    """The sequence of operations that makes an item at a plant, with the times capacity planning needs."""

    entity = "routing"
    key_fields = ("item_id", "location_id", "alternative")
    domain = "master"
    references = {"item_id": "item", "location_id": "location", "operations.work_center_id": "work_center"}

    item_id: Code
    location_id: Code
    alternative: OptionalCode = ""
    description: str = ""
    status: Status = "active"
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    operations: Annotated[list[RoutingOperation], msgspec.Meta(min_length=1)]

    def __post_init__(self) -> None:
        super().__post_init__()
        check_period(self.valid_from, self.valid_to, "valid_from", "valid_to")
        check_unique((op.sequence for op in self.operations), "operation sequence")
        check_unique((op.operation_id for op in self.operations), "operation_id")
