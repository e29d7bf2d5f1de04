"""Planned orders (canonical ``planned_order`` of type ``buy``) as SAP purchase orders: the deep-insert body of
``A_PurchaseOrder`` with one item and one schedule line, and the look-up by reference that makes creation
idempotent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from syncfabric.connectors.odata.configuration import PurchaseOrders

_EPOCH = dt.date(1970, 1, 1)


def sap_date(day: str) -> str:
    """An ISO date as OData v2's ``/Date(ms)/`` (midnight UTC)."""
    return f"/Date({(dt.date.fromisoformat(day) - _EPOCH).days * 86_400_000})/"


def purchase_order_body(key: str, planned: Mapping[str, Any], settings: PurchaseOrders) -> dict[str, Any]:
    """The ``A_PurchaseOrder`` deep insert for a planned order; ValueError saying what is missing otherwise."""
    if planned.get("order_type") != "buy":
        raise ValueError(f"planned order type {planned.get('order_type')!r} is not created as a purchase order")
    supplier = planned.get("supplier_id")
    if not supplier:
        raise ValueError("a buy planned order needs supplier_id to become a purchase order")
    plant = str(planned["location_id"])
    org = settings.plants.get(plant)
    if org is None:
        raise ValueError(f"no purchasing organisation configured for plant {plant!r} "
                         f"(purchase_orders.plants in the system's connection)")
    quantity = planned["quantity"]
    header: dict[str, Any] = {
        "PurchaseOrderType": settings.purchase_order_type, "Supplier": str(supplier),
        "CompanyCode": org.company_code, "PurchasingOrganization": org.purchasing_organization,
        "PurchasingGroup": org.purchasing_group, settings.reference_field: key,
        "to_PurchaseOrderItem": [{
            "PurchaseOrderItem": "10", "Material": str(planned["item_id"]), "Plant": plant,
            "OrderQuantity": str(quantity["value"]), "PurchaseOrderQuantityUnit": str(quantity["unit"]),
            "to_ScheduleLine": [{"ScheduleLine": "1", "ScheduleLineDeliveryDate": sap_date(planned["due_date"]),
                                 "ScheduleLineOrderQuantity": str(quantity["value"])}],
        }],
    }
    if org.currency:
        header["DocumentCurrency"] = org.currency
    return header


def reference_filter(field: str, references: list[str]) -> str:
    return " or ".join(f"{field} eq '{reference.replace(chr(39), chr(39) * 2)}'" for reference in references)
