"""Canonical records that become several kinds of frePPLe record: calendars, bills of material, routings and
forecasts.

A bill of material is an ``operation`` (``<item> @ <location>``, plus `` (<alternative>)`` when the item has
several) that produces the item (frePPLe adds the producing flow itself from the operation's ``item``) and one
``operationmaterial`` per component, consumed at the operation's start with its quantity per unit of the parent
(scrap included; per order for a fixed quantity); a by-product (negative quantity) is produced at the end.
Components the BOM no longer has are deleted; deleting the BOM deletes the operation, and frePPLe deletes what
refers to it (its materials, a routing's resource loads, manufacturing orders). A production order
(:mod:`.shapes`) names its BOM's operation.

A forecast period is a ``forecastplan`` bucket of the forecast (``forecast``: one per item, location and
customer, written without a version because every period writes the same header) holding one measure:
``final`` → ``forecastoverride``, ``statistical`` → ``forecastbaseline``, other types ``forecast_<type>``.
Each type has its own version stream, so types of one bucket never overwrite each other; deleting a period
removes its measure.

Every request of a record carries a ``phase``; the connector sends phase by phase (headers, then lines, then line
deletions, then header deletions), so a line never goes before the record it refers to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from syncfabric.connectors.base import OutboundRecord
from syncfabric.connectors.planning.shapes import (
    UNKNOWN_CUSTOMER,
    Method,
    duration_text,
    end_of,
    operation_name,
    start_of,
    suffixed,
)
from syncfabric.model import KEY_SEPARATOR

Step = tuple[int, str, Method, dict[str, Any]]
"""(phase, frePPLe entity, method, body)."""
Rows = Callable[[str, dict[str, str]], list[dict[str, Any]]]
"""Reads every platform record of a frePPLe entity matching the filters."""


@dataclass
class BomComposite:
    entity: str = "bill_of_material"

    def plan(self, record: OutboundRecord, source: str, held: dict[str, set[str]], rows: Rows) -> list[Step]:
        item_id, location_id, alternative = record.key.split(KEY_SEPARATOR)
        if not location_id:
            raise ValueError("a bill of material for every plant (location_id '') cannot be planned: a frePPLe "
                             "operation belongs to one location; give the BOM per plant")
        name = operation_name(item_id, location_id, alternative)
        marks = {"_version": record.version, "_stream": self.entity}
        if record.payload is None:
            held[record.key] = set()
            return [(3, "operation", "DELETE", {"name": name, **marks})]
        bom = record.payload
        steps: list[Step] = [(0, "operation", "PUT", {
            "name": name, "type": "time_per", "item": item_id, "location": location_id,
            "description": bom.get("description") or f"bill of material of {item_id}",
            "priority": float(bom.get("priority", 1)), "effective_start": start_of(bom.get("valid_from")),
            "effective_end": end_of(bom.get("valid_to")), "source": source, **marks,
        })]
        materials = _materials(bom)
        for component, body in materials.items():
            steps.append((1, "operationmaterial", "PUT", {"operation": name, "item": component,
                                                          "location": location_id, **body, "source": source,
                                                          **marks}))
        now = held[record.key] if record.key in held else {
            row["item"] for row in rows("operationmaterial", {"operation": name})}
        steps += [(2, "operationmaterial", "DELETE", {"operation": name, "item": gone, **marks})
                  for gone in sorted(now - set(materials))]
        held[record.key] = set(materials)
        return steps


def _materials(bom: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Component → its operationmaterial fields; a component on several lines is summed."""
    base = Decimal(str(bom["base_quantity"]["value"]))
    found: dict[str, dict[str, Any]] = {}
    for line in bom["lines"]:
        per = Decimal(str(line["quantity_per"]["value"])) * (1 + Decimal(str(line.get("scrap_percent", 0))) / 100)
        fixed = bool(line.get("fixed_quantity"))
        field_name = "quantity_fixed" if fixed else "quantity"
        amount = -(per if fixed else per / base)  # consumed: negative; a by-product turns positive
        body = found.setdefault(line["component_id"], {
            "type": "start" if amount < 0 else "end", "quantity": 0.0, "quantity_fixed": 0.0,
            "effective_start": start_of(line.get("valid_from")), "effective_end": end_of(line.get("valid_to")),
        })
        body[field_name] = float(Decimal(str(body[field_name])) + amount)
    return found


_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86_400}
ROUTING_FIELDS = ("duration", "duration_per", "posttime")


@dataclass
class RoutingComposite:
    """A routing gives its BOM's operation (same name; created with the routing's fields if the BOM is not there
    yet) its times, summed over the steps: ``duration`` the setup times, ``duration_per`` the run times per unit,
    ``posttime`` the waiting times; and one ``operationresource`` per work center it loads. Deleting the routing
    clears those times and deletes its resource loads; the operation stays with its BOM."""

    entity: str = "routing"

    def plan(self, record: OutboundRecord, source: str, held: dict[str, set[str]], rows: Rows) -> list[Step]:
        item_id, location_id, alternative = record.key.split(KEY_SEPARATOR)
        name = operation_name(item_id, location_id, alternative)
        marks = {"_version": record.version, "_stream": self.entity}
        routing = record.payload
        if routing is None:
            times: dict[str, Any] = dict.fromkeys(ROUTING_FIELDS)
            loads: set[str] = set()
        else:
            totals = dict.fromkeys(ROUTING_FIELDS, Decimal(0))
            loads = set()
            for step in routing["operations"]:
                unit = _SECONDS[step.get("time_unit", "min")]
                totals["duration"] += Decimal(str(step.get("setup_time", 0))) * unit
                totals["duration_per"] += Decimal(str(step["run_time_per_unit"])) * unit
                totals["posttime"] += Decimal(str(step.get("post_time", 0))) * unit
                loads.add(suffixed(step["work_center_id"], location_id))
            times = {field: duration_text(dt.timedelta(seconds=float(seconds))) for field, seconds in totals.items()}
        steps: list[Step] = [(0, "operation", "PUT", {"name": name, "item": item_id, "location": location_id,
                                                      **times, "source": source, **marks})]
        steps += [(1, "operationresource", "PUT", {"operation": name, "resource": resource, "quantity": 1.0,
                                                   "source": source, **marks}) for resource in sorted(loads)]
        now = held[record.key] if record.key in held else {
            row["resource"] for row in rows("operationresource", {"operation": name})}
        steps += [(2, "operationresource", "DELETE", {"operation": name, "resource": gone, **marks})
                  for gone in sorted(now - loads)]
        held[record.key] = loads
        return steps


MEASURES = {"final": "forecastoverride", "statistical": "forecastbaseline"}


@dataclass
class ForecastComposite:
    entity: str = "forecast"

    def plan(self, record: OutboundRecord, source: str, held: dict[str, set[str]], rows: Rows) -> list[Step]:
        item_id, location_id, forecast_type, period_start = record.key.split(KEY_SEPARATOR)
        measure = MEASURES.get(forecast_type, f"forecast_{forecast_type}")
        marks = {"_version": record.version, "_stream": f"{self.entity}.{forecast_type}"}
        payload = record.payload
        customer = (payload or {}).get("customer_id") or UNKNOWN_CUSTOMER
        bucket = {"item": item_id, "location": location_id, "customer": customer,
                  "startdate": start_of(period_start)}
        if payload is None:
            # Which customer the deleted period had is not in the key: clear the measure of every bucket of it.
            matches = rows("forecastplan", {"item": item_id, "location": location_id,
                                            "startdate": start_of(period_start) or ""})
            return [(1, "forecastplan", "PUT", {
                "item": item_id, "location": location_id, "customer": row["customer"], "startdate": row["startdate"],
                "enddate": row["enddate"], "value": {measure: None}, "source": source, **marks})
                for row in matches]
        header = {"name": f"{item_id} @ {location_id}" + ("" if customer == UNKNOWN_CUSTOMER else f" @ {customer}"),
                  "item": item_id, "location": location_id, "customer": customer, "method": "manual",
                  "planned": True, "source": source}
        quantity = float(Decimal(str(payload["quantity"]["value"])))
        return [
            (0, "forecast", "PUT", header),
            (1, "forecastplan", "PUT", {**bucket, "enddate": end_of(payload["period_end"]),
                                        "value": {measure: quantity}, "source": source, **marks}),
        ]


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FREPPLE_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ALWAYS = "1971-01-01T00:00:00"
"""The start frePPLe gives a bucket without a start date."""
DAY_END = "23:59:59"


@dataclass
class CalendarComposite:
    """A calendar is a frePPLe ``calendar`` with default value 0 (not working) and ``calendarbucket`` records
    that make it 1 (working): one per shift on the working weekdays (a shift past midnight is split into its
    evening and the next morning), the whole day when there are no shifts, and one per holiday (0, priority 1) and
    extra working day (1, priority 2), which win over the weekly pattern (priority 10). Times are the plant's
    local time, as frePPLe plans in one time zone; breaks are not subtracted."""

    entity: str = "calendar"

    def plan(self, record: OutboundRecord, source: str, held: dict[str, set[str]], rows: Rows) -> list[Step]:
        name = record.key
        marks = {"_version": record.version, "_stream": self.entity}
        if record.payload is None:
            held[record.key] = set()
            return [(3, "calendar", "DELETE", {"name": name, **marks})]
        calendar = record.payload
        steps: list[Step] = [(0, "calendar", "PUT", {"name": name, "defaultvalue": 0.0,
                                                     "description": calendar.get("name", ""), "source": source,
                                                     **marks})]
        buckets = _buckets(calendar)
        steps += [(1, "calendarbucket", "PUT", {"calendar": name, **bucket, "source": source, **marks})
                  for bucket in buckets]
        wanted = {f"{bucket['startdate']} {bucket['starttime']}" for bucket in buckets}
        now = held[record.key] if record.key in held else {
            f"{row['startdate']} {row['starttime']}" for row in rows("calendarbucket", {"calendar": name})}
        for gone in sorted(now - wanted):
            startdate, starttime = gone.split(" ")
            steps.append((2, "calendarbucket", "DELETE", {"calendar": name, "startdate": startdate,
                                                          "starttime": starttime, **marks}))
        held[record.key] = wanted
        return steps


def _buckets(calendar: Mapping[str, Any]) -> list[dict[str, Any]]:
    working = [day in calendar.get("working_days", _DAYS[:5]) for day in _DAYS]
    following = working[-1:] + working[:-1]  # the day after each working day
    start, end = start_of(calendar.get("valid_from")) or ALWAYS, end_of(calendar.get("valid_to"))
    weekly: list[tuple[str, str, list[bool]]] = []
    for shift in calendar.get("shifts") or [{"start": "00:00:00", "end": "00:00:00"}]:
        begin, finish = _clock(shift["start"]), _clock(shift["end"])
        if finish > begin:
            weekly.append((begin, finish, working))
        else:  # to midnight, and on from midnight the next day
            weekly.append((begin, DAY_END, working))
            if finish != "00:00:00":
                weekly.append(("00:00:00", finish, following))
    buckets = [{"startdate": start, "enddate": end, "starttime": begin, "endtime": finish, "value": 1.0,
                "priority": 10.0, **dict(zip(_FREPPLE_DAYS, days, strict=True))} for begin, finish, days in weekly]
    for day, value, priority in [*((d, 0.0, 1.0) for d in calendar.get("holidays", [])),
                                 *((d, 1.0, 2.0) for d in calendar.get("extra_working_days", []))]:
        buckets.append({"startdate": start_of(day), "enddate": end_of(day), "starttime": "00:00:00",
                        "endtime": DAY_END, "value": value, "priority": priority,
                        **dict.fromkeys(_FREPPLE_DAYS, True)})
    return buckets


def _clock(text: str) -> str:
    return dt.time.fromisoformat(text).strftime("%H:%M:%S")


COMPOSITES: dict[str, BomComposite | RoutingComposite | ForecastComposite | CalendarComposite] = {
    "calendar": CalendarComposite(),
    "bill_of_material": BomComposite(),
    "routing": RoutingComposite(),
    "forecast": ForecastComposite(),
}
"""Canonical entities written as several frePPLe entities."""
