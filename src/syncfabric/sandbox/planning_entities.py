"""The planning platform's input entities, modelled on frePPLe's REST planning input.

Each entity lists its frePPLe fields, its natural key (``name``; ``reference`` for orders; the identifying
fields where frePPLe uses an auto ``id``, e.g. item + location + batch for a buffer), what is required, which
fields are numbers, durations, dates or booleans, and which fields reference other entities.

frePPLe keys calendar buckets by an automatic id; here they are keyed by calendar, start date and start time.

References to items, locations, operations and resources must exist (the record is rejected otherwise), as in
frePPLe. Suppliers, customers and calendars are accepted as plain names: the simulated platform does not hold
them as constraints, so a purchase order or demand can load before its party's master record.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EntitySpec:
    name: str
    key: tuple[str, ...]
    fields: tuple[str, ...]
    """Writable fields besides the key (``source`` is added to every entity)."""
    required: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    durations: tuple[str, ...] = ()
    """frePPLe durations: seconds (a number) or DRF text ``[D ]HH:MM:SS``; stored as the text."""
    dates: tuple[str, ...] = ()
    booleans: tuple[str, ...] = ()
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)
    """Field → referenced entity; the value must be the name of an existing record."""
    optional_key: tuple[str, ...] = ()
    """Key fields that may be empty (stored as ``""``), like a buffer's batch."""
    apps: tuple[str, ...] = ("input",)
    """REST apps the entity is served under (``/api/<app>/<entity>/``)."""
    measures: tuple[str, ...] = ()
    """JSON objects of named numbers merged name by name on write, as frePPLe's forecast plan merges its measures
    (a ``null`` removes one); every other field is replaced whole."""

    @property
    def writable(self) -> frozenset[str]:
        return frozenset((*self.key, *self.fields, "source"))


_HIERARCHY = ("owner", "description", "category", "subcategory")
_ORDER_STATUS = ("proposed", "approved", "confirmed", "completed", "closed")
_SIZES = ("sizeminimum", "sizemultiple", "sizemaximum")
_EFFECTIVE = ("effective_start", "effective_end")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

ENTITIES: dict[str, EntitySpec] = {
    spec.name: spec
    for spec in (
        EntitySpec(
            "calendar", ("name",), ("defaultvalue", "description", "category", "subcategory"), numbers=("defaultvalue",)
        ),
        EntitySpec(
            "calendarbucket", ("calendar", "startdate", "starttime"),
            ("enddate", "value", "priority", *_WEEKDAYS, "endtime"),
            required=("value",), numbers=("value", "priority"), dates=("startdate", "enddate"), booleans=_WEEKDAYS,
            references={"calendar": "calendar"},
        ),
        EntitySpec(
            "location", ("name",), (*_HIERARCHY, "available"), references={"owner": "location"}
        ),
        EntitySpec("customer", ("name",), _HIERARCHY),
        EntitySpec("supplier", ("name",), (*_HIERARCHY, "available")),
        EntitySpec(
            "item", ("name",), (*_HIERARCHY, "cost", "volume", "weight", "periodofcover", "uom", "type"),
            numbers=("cost", "volume", "weight", "periodofcover"),
            choices={"type": ("make to stock", "make to order")}, references={"owner": "item"},
        ),
        EntitySpec(
            "buffer", ("item", "location", "batch"),
            ("onhand", "minimum", "minimum_calendar", "maximum", "maximum_calendar", "min_interval", "type",
             "description", "category", "subcategory"),
            numbers=("onhand", "minimum", "maximum"), durations=("min_interval",),
            references={"item": "item", "location": "location"}, optional_key=("batch",),
        ),
        EntitySpec(
            "itemsupplier", ("item", "location", "supplier"),
            ("leadtime", *_SIZES, "batchwindow", "cost", "priority", *_EFFECTIVE, "extra_safety_leadtime",
             "hard_safety_leadtime", "resource", "resource_qty", "fence"),
            numbers=(*_SIZES, "cost", "priority", "resource_qty"),
            durations=("leadtime", "batchwindow", "extra_safety_leadtime", "hard_safety_leadtime", "fence"),
            dates=_EFFECTIVE, references={"item": "item", "location": "location", "resource": "resource"},
            optional_key=("location",),
        ),
        EntitySpec(
            "itemdistribution", ("item", "location", "origin"),
            ("leadtime", *_SIZES, "batchwindow", "cost", "priority", *_EFFECTIVE, "resource", "resource_qty",
             "fence"),
            numbers=(*_SIZES, "cost", "priority", "resource_qty"), durations=("leadtime", "batchwindow", "fence"),
            dates=_EFFECTIVE,
            references={"item": "item", "location": "location", "origin": "location", "resource": "resource"},
        ),
        EntitySpec(
            "resource", ("name",),
            (*_HIERARCHY, "type", "constrained", "maximum", "maximum_calendar", "available", "location", "cost",
             "maxearly", "setupmatrix", "setup", "efficiency", "efficiency_calendar"),
            numbers=("maximum", "cost", "efficiency"), durations=("maxearly",), booleans=("constrained",),
            references={"owner": "resource", "location": "location"},
        ),
        EntitySpec(
            "operation", ("name",),
            ("type", "item", "location", "duration", "duration_per", *_SIZES, "fence", "posttime", "batchwindow",
             "cost", "priority", "owner", *_EFFECTIVE, "available", "search", "description", "category",
             "subcategory"),
            required=("location",), numbers=(*_SIZES, "cost", "priority"),
            durations=("duration", "duration_per", "fence", "posttime", "batchwindow"), dates=_EFFECTIVE,
            choices={"type": ("fixed_time", "time_per", "routing", "alternate", "split")},
            references={"item": "item", "location": "location", "owner": "operation"},
        ),
        EntitySpec(
            "operationmaterial", ("operation", "item"),
            ("location", "quantity", "quantity_fixed", "type", "transferbatch", "offset", *_EFFECTIVE, "name",
             "priority", "search"),
            numbers=("quantity", "quantity_fixed", "transferbatch", "priority"), durations=("offset",),
            dates=_EFFECTIVE, choices={"type": ("start", "end", "transfer_batch")},
            references={"operation": "operation", "item": "item", "location": "location"},
        ),
        EntitySpec(
            "operationresource", ("operation", "resource"),
            ("skill", "quantity", "quantity_fixed", *_EFFECTIVE, "name", "priority", "setup", "search"),
            numbers=("quantity", "quantity_fixed", "priority"), dates=_EFFECTIVE,
            references={"operation": "operation", "resource": "resource"},
        ),
        EntitySpec(
            "demand", ("name",),
            ("item", "customer", "location", "due", "quantity", "priority", "status", "operation", "minshipment",
             "maxlateness", "policy", "batch", "owner", "description", "category", "subcategory"),
            required=("item", "customer", "location", "due", "quantity"),
            numbers=("quantity", "priority", "minshipment"), durations=("maxlateness",), dates=("due",),
            choices={"status": ("inquiry", "quote", "open", "closed", "canceled")},
            references={"item": "item", "location": "location", "operation": "operation"},
        ),
        EntitySpec(
            "purchaseorder", ("reference",),
            ("status", "item", "supplier", "location", "quantity", "startdate", "enddate", "batch", "description"),
            required=("item", "supplier", "location", "quantity"), numbers=("quantity",),
            dates=("startdate", "enddate"), choices={"status": _ORDER_STATUS},
            references={"item": "item", "location": "location"},
        ),
        EntitySpec(
            "distributionorder", ("reference",),
            ("status", "item", "origin", "destination", "quantity", "startdate", "enddate", "batch"),
            required=("item", "origin", "destination", "quantity"), numbers=("quantity",),
            dates=("startdate", "enddate"), choices={"status": _ORDER_STATUS},
            references={"item": "item", "origin": "location", "destination": "location"},
        ),
        EntitySpec(
            "manufacturingorder", ("reference",),
            ("status", "operation", "quantity", "quantity_completed", "startdate", "enddate", "batch", "owner",
             "demand", "resources", "materials"),
            required=("operation", "quantity"), numbers=("quantity", "quantity_completed"),
            dates=("startdate", "enddate"), choices={"status": _ORDER_STATUS},
            references={"operation": "operation"},
        ),
        EntitySpec(
            "forecast", ("name",),
            ("item", "location", "customer", "batch", "method", "priority", "minshipment", "maxlateness",
             "discrete", "planned", "operation", "description", "category", "subcategory"),
            required=("item", "location"), numbers=("priority", "minshipment"), durations=("maxlateness",),
            booleans=("discrete", "planned"),
            references={"item": "item", "location": "location", "operation": "operation"},
            apps=("forecast", "input"),
        ),
        EntitySpec(
            "forecastplan", ("item", "location", "customer", "startdate"), ("enddate", "value"),
            required=("enddate",), dates=("startdate", "enddate"), measures=("value",),
            references={"item": "item", "location": "location"}, apps=("forecast",),
        ),
        EntitySpec(
            "plannedorder", ("reference",),
            ("type", "item", "location", "supplier", "quantity", "uom", "startdate", "enddate", "status"),
            required=("type", "item", "location", "quantity"), numbers=("quantity",),
            dates=("startdate", "enddate"), choices={"type": ("buy", "make"), "status": _ORDER_STATUS},
            references={"item": "item", "location": "location"}, apps=("output",),
        ),
    )
}
"""Every entity the platform serves, masters before the records that reference them."""


def dependents(entity: str) -> list[tuple[str, str]]:
    """``(entity, field)`` pairs whose field references ``entity``: what a deletion cascades to, as in frePPLe."""
    return [
        (spec.name, name) for spec in ENTITIES.values() for name, target in spec.references.items() if target == entity
    ]


def normalize(spec: EntitySpec, record: dict[str, Any]) -> dict[str, Any]:
    """The record's fields checked and normalised (numbers as floats, durations as text). ValueError says why."""
    unknown = sorted(set(record) - spec.writable)
    if unknown:
        raise ValueError(f"unknown field(s) for {spec.name}: {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for name, value in record.items():
        out[name] = None if value is None else _field(spec, name, value)
    return out


def _field(spec: EntitySpec, name: str, value: Any) -> Any:
    if name in spec.numbers:
        return _number(name, value)
    if name in spec.durations:
        return _duration(name, value)
    if name in spec.dates:
        return _date(name, value)
    if name in spec.booleans:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if name in spec.measures:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ValueError(f"{name} must be an object of measures, got {value!r}")
        return {measure: None if number is None else _number(f"{name}.{measure}", number)
                for measure, number in value.items()}
    if name in ("resources", "materials"):
        if not isinstance(value, list):
            raise ValueError(f"{name} must be a list")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {value!r}")
    allowed = spec.choices.get(name)
    if allowed and value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


_DURATION = re.compile(r"^(?:(?P<days>-?\d+) )?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d{1,6})?)$")


def _duration(name: str, value: Any) -> str:
    """Seconds or DRF duration text, returned as Django's ``duration_string`` renders it."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        delta = dt.timedelta(seconds=value)
    elif isinstance(value, str) and (match := _DURATION.match(value.strip())):
        delta = dt.timedelta(
            days=int(match["days"] or 0), hours=int(match["h"]), minutes=int(match["m"]), seconds=float(match["s"])
        )
    else:
        raise ValueError(f"{name} must be a duration ('D HH:MM:SS' or seconds), got {value!r}")
    return duration_string(delta)


def duration_string(delta: dt.timedelta) -> str:
    days, rest = delta.days, delta - dt.timedelta(days=delta.days)
    minutes, seconds = divmod(rest.seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if days:
        text = f"{days} {text}"
    if rest.microseconds:
        text += f".{rest.microseconds:06d}"
    return text


def _date(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO date or timestamp, got {value!r}")
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} must be an ISO date or timestamp, got {value!r}") from None
    return value
