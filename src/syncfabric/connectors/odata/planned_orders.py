"""Planned orders of type ``make`` as SAP planned orders for in-house production (``A_PlannedOrder``), and how a
re-sent one finds the planned order it already became.

Standard ``A_PlannedOrder`` has no field for a foreign reference (purchase orders carry ours in
``CorrespncExternalReference``). With ``planned_orders.reference_field`` (a key-user custom field) the id is
written on create and looked up before creating, as for purchase orders: a re-sent order finds its SAP planned
order whatever happened between SAP's commit and ours. Without it, creation is idempotent in two steps: the
outbound flow passes the SAP planned order a key is linked to in the cross-reference
(``OutboundRecord.external_id``), and a key without a link (a crash between SAP's commit and ours) is matched on
what it asks for: material, plant, type, finish date and quantity.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from syncfabric.connectors.odata.configuration import PlannedOrders
from syncfabric.connectors.odata.purchase_orders import sap_date

ENTITY_SET = "A_PlannedOrder"


def planned_order_body(key: str, planned: Mapping[str, Any], settings: PlannedOrders) -> dict[str, Any]:
    """The ``A_PlannedOrder`` create body for a make planned order (carrying ``key`` in the reference field, when
    there is one); ValueError saying what is missing otherwise."""
    if planned.get("order_type") != "make":
        raise ValueError(f"planned order type {planned.get('order_type')!r} is not created as an SAP planned order")
    plant = str(planned["location_id"])
    quantity = planned["quantity"]
    reference = {settings.reference_field: key} if settings.reference_field else {}
    return {
        **reference,
        "PlannedOrderType": settings.planned_order_type, "Material": str(planned["item_id"]),
        "ProductionPlant": plant, "MRPPlant": plant, "MaterialProcurementCategory": "E",
        "TotalQuantity": str(quantity["value"]), "BaseUnit": str(quantity["unit"]),
        "PlndOrderPlannedStartDate": sap_date(planned["start_date"]),
        "PlndOrderPlannedEndDate": sap_date(planned["due_date"]),
    }


def same_order(row: Mapping[str, Any], body: Mapping[str, Any], finish: str) -> bool:
    """Whether an SAP planned order (plain JSON, dates as ISO text) is the one ``body`` asks for."""
    try:
        same_quantity = Decimal(str(row.get("TotalQuantity"))) == Decimal(str(body["TotalQuantity"]))
    except ArithmeticError:
        return False
    return (same_quantity and str(row.get("PlannedOrderType")) == body["PlannedOrderType"]
            and str(row.get("PlndOrderPlannedEndDate", ""))[:10] == finish)
