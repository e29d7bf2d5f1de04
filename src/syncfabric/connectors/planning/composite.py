"""Canonical records that become several kinds of frePPLe record: bills of material and forecasts.

A bill of material is an ``operation`` (``<item> @ <location>``, plus `` (<alternative>)`` when the item has
several) that produces the item (frePPLe adds the producing flow itself from the operation's ``item``) and one
``operationmaterial`` per component, consumed at the operation's start with its quantity per unit of the parent
(scrap included; per order for a fixed quantity); a by-product (negative quantity) is produced at the end.
Components the BOM no longer has are deleted; deleting the BOM deletes the operation, and frePPLe deletes its
materials with it. A production order (:mod:`.shapes`) names its BOM's operation.

A forecast period is a ``forecastplan`` bucket of the forecast (``forecast``: one per item, location and
customer, written without a version because every period writes the same header) holding one measure:
``final`` → ``forecastoverride``, ``statistical`` → ``forecastbaseline``, other types ``forecast_<type>``.
Each type has its own version stream, so types of one bucket never overwrite each other; deleting a period
removes its measure.

Every request of a record carries a ``phase``; the connector sends phase by phase (headers, then lines, then line
deletions, then header deletions), so a line never goes before the record it refers to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from syncfabric.connectors.base import OutboundRecord
from syncfabric.connectors.planning.shapes import UNKNOWN_CUSTOMER, Method, end_of, operation_name, start_of
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
            "name": name, "type": "fixed_time", "item": item_id, "location": location_id,
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


COMPOSITES: dict[str, BomComposite | ForecastComposite] = {
    "bill_of_material": BomComposite(),
    "forecast": ForecastComposite(),
}
"""Canonical entities written as several frePPLe entities."""
