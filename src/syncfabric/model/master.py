"""Master data: the slow-changing facts planning is built on (units, calendars, locations, items, suppliers).

Production structures (work centers, bills of material, routings) are in :mod:`syncfabric.model.structures`.
Classes are defined in dependency order: the registry lists entities in the order they appear here, so an
entity only refers to entities defined above it (or to itself, for hierarchies).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from syncfabric.model.base import (
    Code,
    CountryCode,
    CurrencyCode,
    Line,
    NonNegative,
    OptionalCode,
    Positive,
    PositiveQuantity,
    Record,
    check_period,
    check_unique,
)

MakeOrBuy = Literal["make", "buy", "transfer"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class UnitOfMeasure(Record, frozen=True, kw_only=True):
    """A unit quantities are counted in (EA, KG, BOX), with the physical dimension that says what converts to what."""

    entity = "unit_of_measure"
    key_fields = ("code",)
    domain = "master"

    code: Code
    dimension: Literal["count", "mass", "length", "area", "volume", "time", "energy", "other"]
    description: str = ""
    iso_code: str | None = None
    """The UN/ECE Recommendation 20 code (C62, KGM) that ERPs exchange in EDI and OData."""
    decimals: Annotated[int, msgspec.Meta(ge=0, le=12)] | None = None
    """Decimal places quantities in this unit are rounded to (0 for pieces)."""


class Shift(Line, frozen=True, kw_only=True):
    """A daily shift, in the calendar's time zone; an end at or before the start crosses midnight."""

    name: Code
    start: dt.time
    end: dt.time
    break_minutes: Annotated[int, msgspec.Meta(ge=0)] = 0

    def hours(self) -> Decimal:
        start = self.start.hour * 60 + self.start.minute
        end = self.end.hour * 60 + self.end.minute
        minutes = (end - start) % (24 * 60) or 24 * 60
        return Decimal(minutes - self.break_minutes) / 60


class Calendar(Record, frozen=True, kw_only=True):
    """When a plant, work center or supplier works: working weekdays, shifts and non-working dates.

    Simple on purpose: a planning system gets available hours per day from it; exceptions are whole dates.
    """

    entity = "calendar"
    key_fields = ("calendar_id",)
    domain = "master"

    calendar_id: Code
    name: str = ""
    time_zone: str = "UTC"
    """IANA time zone the shift times are in (Europe/Berlin)."""
    working_days: list[Weekday] = msgspec.field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])
    shifts: list[Shift] = msgspec.field(default_factory=list)
    """Shifts of every working day; none means the whole day is available."""
    holidays: list[dt.date] = msgspec.field(default_factory=list)
    """Dates that are not worked although their weekday is."""
    extra_working_days: list[dt.date] = msgspec.field(default_factory=list)
    """Dates that are worked although their weekday is not (a Saturday shift)."""
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unique(self.working_days, "working_days")
        check_unique((shift.name for shift in self.shifts), "shift names")
        clash = set(self.holidays) & set(self.extra_working_days)
        if clash:
            raise ValueError(f"dates cannot be both holidays and extra working days: {sorted(clash)}")
        check_period(self.valid_from, self.valid_to, "valid_from", "valid_to")

    def hours_per_day(self) -> Decimal:
        """Working hours of one working day: the sum of its shifts, or 24 without shifts."""
        if not self.shifts:
            return Decimal(24)
        return sum((shift.hours() for shift in self.shifts), Decimal(0))


class Location(Record, frozen=True, kw_only=True):
    """A node of the location hierarchy: region → plant or site → warehouse → storage."""

    entity = "location"
    key_fields = ("location_id",)
    domain = "master"
    references = {"parent_id": "location", "calendar_id": "calendar"}

    location_id: Code
    name: str = ""
    kind: Literal["region", "plant", "site", "warehouse", "storage", "distribution_center"]
    parent_id: Code | None = None
    time_zone: str = "UTC"
    country: str | None = None
    calendar_id: Code | None = None
    """The working calendar of the site (receiving and production days)."""


class Item(Record, frozen=True, kw_only=True):
    """A material or product, identified by its canonical item number."""

    entity = "item"
    key_fields = ("item_id",)
    domain = "master"
    references = {"base_unit": "unit_of_measure"}

    item_id: Code
    description: str = ""
    base_unit: Code
    item_type: Literal["finished", "semi_finished", "raw", "packaging", "service"] = "raw"
    category: str | None = None
    status: Literal["active", "blocked", "obsolete"] = "active"
    unit_cost: NonNegative | None = None
    weight_kg: NonNegative | None = None
    lot_controlled: bool = False
    """Stock is kept per lot (batch): balances and movements carry a lot."""
    shelf_life_days: Annotated[int, msgspec.Meta(ge=0)] | None = None


class UnitConversion(Record, frozen=True, kw_only=True):
    """How many ``to_unit`` make one ``from_unit``: globally (1 KG = 1000 G) or for one item (1 BOX = 12 EA).

    ``item_id`` is ``""`` for a global conversion; an item's own conversion wins over a global one.
    Only one direction needs to be stored: the inverse is ``1 / factor``.
    """

    entity = "unit_conversion"
    key_fields = ("item_id", "from_unit", "to_unit")
    domain = "master"
    references = {"item_id": "item", "from_unit": "unit_of_measure", "to_unit": "unit_of_measure"}

    item_id: OptionalCode = ""
    from_unit: Code
    to_unit: Code
    factor: Positive

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.from_unit == self.to_unit:
            raise ValueError(f"from_unit and to_unit must differ, both are {self.from_unit!r}")


class Supplier(Record, frozen=True, kw_only=True):
    """A company materials are bought from (a business partner in the supplier role)."""

    entity = "supplier"
    key_fields = ("supplier_id",)
    domain = "master"
    references = {"calendar_id": "calendar"}

    supplier_id: Code
    name: str = ""
    country: CountryCode | None = None
    currency: CurrencyCode | None = None
    status: Literal["active", "blocked"] = "active"
    category: str | None = None
    calendar_id: Code | None = None
    """The days the supplier ships on."""


class ItemLocation(Record, frozen=True, kw_only=True):
    """Planning parameters of one item at one location. Quantities are in the item's base unit."""

    entity = "item_location"
    key_fields = ("item_id", "location_id")
    domain = "master"
    references = {"item_id": "item", "location_id": "location"}

    item_id: Code
    location_id: Code
    make_or_buy: MakeOrBuy = "buy"
    lead_time_days: NonNegative = Decimal(0)
    safety_stock: NonNegative = Decimal(0)
    lot_size_rule: Literal["lot_for_lot", "fixed", "multiple", "min_max", "period_of_supply"] = "lot_for_lot"
    lot_size: NonNegative | None = None
    planner: str | None = None


class ItemSupplier(Record, frozen=True, kw_only=True):
    """A source of supply: an item bought from a supplier, for one receiving location or (``""``) for all.

    The purchasing info record, source list entry or supplier price list line that tells planning how long a
    purchase takes and in which quantities it can be ordered.
    """

    entity = "item_supplier"
    key_fields = ("item_id", "supplier_id", "location_id")
    domain = "master"
    references = {"item_id": "item", "supplier_id": "supplier", "location_id": "location"}

    item_id: Code
    supplier_id: Code
    location_id: OptionalCode = ""
    supplier_item_code: str | None = None
    lead_time_days: NonNegative
    minimum: PositiveQuantity | None = None
    """The smallest quantity the supplier accepts in one order."""
    multiple: PositiveQuantity | None = None
    """Order quantities are rounded up to a multiple of this (a pallet, a carton)."""
    maximum: PositiveQuantity | None = None
    priority: Annotated[int, msgspec.Meta(ge=0)] = 1
    """Lower is preferred among the sources of one item and location."""
    unit_price: NonNegative | None = None
    price_unit: PositiveQuantity | None = None
    """The quantity ``unit_price`` is for (price per 100 EA); one base unit when absent."""
    currency: CurrencyCode | None = None
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_period(self.valid_from, self.valid_to, "valid_from", "valid_to")
        low, high = self.minimum, self.maximum
        if low is not None and high is not None and low.unit == high.unit and high.value < low.value:
            raise ValueError(f"maximum ({high}) must not be below minimum ({low})")
