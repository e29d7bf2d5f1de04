"""The planning platform's material requirements netting: what it proposes from what it has received.

One run nets every item at every location over one horizon, parents before their components (low-level code):

    gross       = open demand + forecast (within the horizon) + dependent demand of the parents' planned make orders
    projected   = on hand (all batches) + open supply (approved / confirmed purchase and manufacturing orders)
    shortage    = safety stock (the buffer's minimum) + gross - projected
    planned     = the shortage, raised to the item supplier's minimum and multiple, when it is positive

A location that makes the item (an operation producing it there) gets a ``make`` order whose components are
exploded through the operation's materials (``operationmaterial`` with negative quantities consume); otherwise an
item supplier makes it a ``buy`` order from that supplier. The order is due at the earliest need (today when the
shortage is already there) and starts its lead time earlier (the item supplier's ``leadtime``, the operation's
``duration``), never before today. An item with neither gets no order: it is reported as ``unsourced``.

Planned order references are stable (:func:`reference`: ``PL`` and eight hex digits derived from item and location,
short enough for an ERP's external reference field), so a run replaces the previous run's proposal for the same item
and location instead of adding to it: running twice proposes the same orders once.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from syncfabric.sandbox.planning_entities import ENTITIES
from syncfabric.sandbox.planning_state import PlanningState

OPEN_SUPPLY = frozenset({"approved", "confirmed"})
_DURATION = re.compile(r"^(?:(?P<days>-?\d+) )?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d+)?)$")
Place = tuple[str, str]


def duration_days(text: Any) -> int:
    """Whole days (rounded up) of a frePPLe duration: seconds, or ``[D ]HH:MM:SS``; 0 when absent."""
    if text in (None, ""):
        return 0
    if isinstance(text, int | float):
        return math.ceil(float(text) / 86_400)
    match = _DURATION.match(str(text))
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    seconds = int(match["days"] or 0) * 86_400 + int(match["h"]) * 3600 + int(match["m"]) * 60 + float(match["s"])
    return math.ceil(seconds / 86_400)


def reference(item: str, location: str) -> str:
    """The planned order reference of an item at a location: the same in every run."""
    return f"PL{zlib.crc32(f'{item}@{location}'.encode()):08X}"


@dataclass
class MrpResult:
    planned: list[dict[str, Any]]
    unsourced: list[str] = field(default_factory=list)
    """``item@location`` short of stock with no way to get it (no operation, no item supplier)."""


def run_mrp(state: PlanningState, *, today: dt.date, horizon_days: int = 28) -> MrpResult:
    """Net every buffer and demand the platform holds; the planned orders, stable-keyed."""
    rows = {name: state.query(ENTITIES[name], {}) for name in
            ("item", "buffer", "purchaseorder", "manufacturingorder", "demand", "forecastplan", "itemsupplier",
             "operation", "operationmaterial")}
    horizon = today + dt.timedelta(days=horizon_days)
    units = {item["name"]: item.get("uom") for item in rows["item"]}
    on_hand: dict[Place, float] = defaultdict(float)
    safety: dict[Place, float] = defaultdict(float)
    for buffer in rows["buffer"]:
        place = (buffer["item"], buffer["location"])
        on_hand[place] += float(buffer.get("onhand") or 0)
        safety[place] = max(safety[place], float(buffer.get("minimum") or 0))
    operations = {op["name"]: op for op in rows["operation"] if op.get("item")}
    makes = {(op["item"], op["location"]): op for op in operations.values()}
    supply: dict[Place, float] = defaultdict(float)
    for order in rows["purchaseorder"]:
        if order.get("status") in OPEN_SUPPLY:
            supply[(order["item"], order["location"])] += float(order["quantity"])
    for order in rows["manufacturingorder"]:
        operation = operations.get(order.get("operation", ""))
        if order.get("status") in OPEN_SUPPLY and operation is not None:
            left = float(order["quantity"]) - float(order.get("quantity_completed") or 0)
            supply[(operation["item"], operation["location"])] += max(left, 0.0)
    needs: dict[Place, list[tuple[dt.date, float]]] = defaultdict(list)
    for demand in rows["demand"]:
        due = _day(demand["due"])
        if demand.get("status", "open") == "open" and due <= horizon:
            needs[(demand["item"], demand["location"])].append((max(due, today), float(demand["quantity"])))
    for bucket in rows["forecastplan"]:
        start = _day(bucket["startdate"])
        value = (bucket.get("value") or {}).get("forecasttotal") or 0
        if start <= horizon and value:
            needs[(bucket["item"], bucket["location"])].append((max(start, today), float(value)))
    components: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for material in rows["operationmaterial"]:
        if float(material.get("quantity") or 0) < 0:
            components[material["operation"]].append((material["item"], -float(material["quantity"])))
    suppliers: dict[Place, dict[str, Any]] = {}
    for offer in sorted(rows["itemsupplier"], key=lambda o: (float(o.get("priority") or 1), o["supplier"])):
        for place in _places(offer, on_hand, needs):
            suppliers.setdefault(place, offer)

    result = MrpResult([])
    for place in _low_level_order(set(on_hand) | set(needs) | set(safety), makes, components):
        item, location = place
        gross = sum(quantity for _, quantity in needs[place])
        shortage = safety[place] + gross - on_hand[place] - supply[place]
        if shortage <= 1e-9:
            continue
        due = min((day for day, _ in needs[place]), default=today)
        operation, offer = makes.get(place), suppliers.get(place)
        if operation is None and offer is None:
            result.unsourced.append(f"{item}@{location}")
            continue
        source: dict[str, Any] = operation if operation is not None else offer  # type: ignore[assignment]
        lead = duration_days(source.get("duration") if operation else source.get("leadtime"))
        quantity = _sized(shortage, source)
        due = max(due, today + dt.timedelta(days=lead))
        order = {"reference": reference(item, location), "type": "make" if operation else "buy", "item": item,
                 "location": location, "supplier": None if operation else source["supplier"],
                 "quantity": quantity, "uom": units.get(item), "startdate": (due - dt.timedelta(days=lead)).isoformat(),
                 "enddate": due.isoformat(), "status": "proposed"}
        result.planned.append(order)
        if operation is not None:
            start = _day(order["startdate"])
            for component, per in components[operation["name"]]:
                needs[(component, location)].append((start, per * quantity))
    return result


def _places(offer: dict[str, Any], *known: dict[Place, Any]) -> list[Place]:
    if offer.get("location"):
        return [(offer["item"], offer["location"])]
    return sorted({place for table in known for place in table if place[0] == offer["item"]})


def _low_level_order(places: set[Place], makes: dict[Place, dict[str, Any]],
                     components: dict[str, list[tuple[str, float]]]) -> list[Place]:
    """Places ordered so that every parent comes before its components (deepest components last)."""
    level: dict[Place, int] = {}

    def depth(place: Place, seen: frozenset[Place] = frozenset()) -> int:
        if place in seen:
            raise ValueError(f"the bill of materials of {place[0]} at {place[1]} contains itself")
        parents = [parent for parent, op in makes.items() if parent[1] == place[1]
                   and any(component == place[0] for component, _ in components[op["name"]])]
        return max((depth(parent, seen | {place}) + 1 for parent in parents), default=0)

    everything = set(places) | {(component, place[1]) for place, op in makes.items()
                                for component, _ in components[op["name"]]}
    for place in everything:
        level[place] = depth(place)
    return sorted(everything, key=lambda place: (level[place], place))


def _sized(shortage: float, rules: dict[str, Any] | None) -> float:
    rules = rules or {}
    quantity = max(shortage, float(rules.get("sizeminimum") or 0))
    multiple = float(rules.get("sizemultiple") or 0)
    if multiple > 0:
        quantity = math.ceil(quantity / multiple - 1e-9) * multiple
    return float(math.ceil(quantity - 1e-9))


def _day(text: str) -> dt.date:
    return dt.date.fromisoformat(str(text)[:10])
