"""One representative record per canonical entity, filled beyond its required fields.

The round-trip and schema tests run over the registry and fail for an entity without a sample here.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from syncfabric.model import Quantity, Record
from syncfabric.model.events import DemandSpike, MachineDowntime, QualityHold, SupplierDelay
from syncfabric.model.execution import (
    ProductionCompletion,
    ShipmentLine,
    ShipmentMilestone,
    ShipmentNotice,
    SupplierConfirmation,
)
from syncfabric.model.master import (
    Calendar,
    Item,
    ItemLocation,
    ItemSupplier,
    Location,
    Shift,
    Supplier,
    UnitConversion,
    UnitOfMeasure,
)
from syncfabric.model.planning import Forecast, PlannedOrder, PlanRun, SafetyStockTarget
from syncfabric.model.structures import BillOfMaterial, BomLine, Routing, RoutingOperation, WorkCenter
from syncfabric.model.transactions import (
    ComponentRequirement,
    DemandLine,
    InventoryBalance,
    InventoryMovement,
    ProductionOrder,
    PurchaseOrder,
    PurchaseOrderLine,
    SalesOrder,
    ScheduleLine,
)

UTC = dt.UTC
T0 = dt.datetime(2025, 3, 14, 7, 30, tzinfo=UTC)
D0 = dt.date(2025, 3, 14)


def qty(value: str, unit: str = "EA") -> Quantity:
    return Quantity(value=Decimal(value), unit=unit)


SAMPLES: dict[str, Record] = {
    "unit_of_measure": UnitOfMeasure(code="EA", dimension="count", description="each", iso_code="C62", decimals=0),
    "calendar": Calendar(
        calendar_id="DE-2SHIFT",
        name="Two shifts, Bavaria",
        time_zone="Europe/Berlin",
        shifts=[
            Shift(name="early", start=dt.time(6), end=dt.time(14), break_minutes=30),
            Shift(name="late", start=dt.time(14), end=dt.time(22), break_minutes=30),
        ],
        holidays=[dt.date(2025, 5, 1), dt.date(2025, 12, 25)],
        extra_working_days=[dt.date(2025, 3, 15)],
    ),
    "location": Location(
        location_id="P1000", name="Munich plant", kind="plant", parent_id="EMEA", time_zone="Europe/Berlin",
        country="DE", calendar_id="DE-2SHIFT",
    ),
    "item": Item(
        item_id="FG-100", description="Pump assembly", base_unit="EA", item_type="finished", category="pumps",
        unit_cost=Decimal("182.40"), weight_kg=Decimal("12.5"), lot_controlled=True, shelf_life_days=720,
    ),
    "unit_conversion": UnitConversion(item_id="FG-100", from_unit="BOX", to_unit="EA", factor=Decimal(12)),
    "supplier": Supplier(supplier_id="S-4711", name="Acme Castings", country="CZ", currency="EUR"),
    "item_location": ItemLocation(
        item_id="FG-100", location_id="P1000", make_or_buy="make", lead_time_days=Decimal("2.5"),
        safety_stock=Decimal(40), lot_size_rule="multiple", lot_size=Decimal(20), planner="A12",
    ),
    "item_supplier": ItemSupplier(
        item_id="RM-200", supplier_id="S-4711", location_id="P1000", supplier_item_code="AC-88-200",
        lead_time_days=Decimal(14), minimum=qty("100"), multiple=qty("50"), maximum=qty("5000"), priority=1,
        unit_price=Decimal("3.85"), price_unit=qty("1"), currency="EUR",
        valid_from=dt.date(2025, 1, 1), valid_to=dt.date(2025, 12, 31),
    ),
    "work_center": WorkCenter(
        work_center_id="ASSY1", location_id="P1000", name="Assembly line 1", kind="line",
        capacity_per_day=qty("15", "h"), efficiency_percent=Decimal(92), calendar_id="DE-2SHIFT",
    ),
    "bill_of_material": BillOfMaterial(
        item_id="FG-100", location_id="P1000", alternative="1", base_quantity=qty("1"),
        valid_from=dt.date(2025, 1, 1),
        lines=[
            BomLine(line_id="0010", component_id="RM-200", quantity_per=qty("2"), scrap_percent=Decimal("1.5")),
            BomLine(line_id="0020", component_id="RM-300", quantity_per=qty("0.75", "KG"), operation_id="0020"),
        ],
    ),
    "routing": Routing(
        item_id="FG-100", location_id="P1000", alternative="1",
        operations=[
            RoutingOperation(sequence=10, operation_id="0010", work_center_id="MACH3", setup_time=Decimal(30),
                             run_time_per_unit=Decimal("4.2")),
            RoutingOperation(sequence=20, operation_id="0020", work_center_id="ASSY1",
                             run_time_per_unit=Decimal("0.1"), time_unit="h"),
        ],
    ),
    "inventory_balance": InventoryBalance(
        item_id="FG-100", location_id="P1000", lot="L2025-031", on_hand=qty("120"), allocated=qty("20"),
        in_inspection=qty("5"), blocked=qty("0"), as_of=T0,
    ),
    "inventory_movement": InventoryMovement(
        movement_id="4900001234-0001", item_id="RM-200", location_id="P1000", quantity=qty("-48"),
        movement_type="production_issue", posted_at=T0, reference="MO-100077",
    ),
    "sales_order": SalesOrder(
        order_id="SO-88001", customer_id="C-310", order_date=D0,
        lines=[
            DemandLine(line_id="10", item_id="FG-100", location_id="P1000", quantity=qty("30"),
                       due_date=dt.date(2025, 4, 1), priority=1),
            DemandLine(line_id="20", item_id="FG-100", location_id="P1000", quantity=qty("12"),
                       due_date=dt.date(2025, 4, 15), status="partially_shipped", shipped_quantity=qty("4")),
        ],
    ),
    "purchase_order": PurchaseOrder(
        order_id="4500017001", supplier_id="S-4711", order_date=D0, currency="EUR", status="confirmed",
        lines=[
            PurchaseOrderLine(
                line_id="00010", item_id="RM-200", location_id="P1000", quantity=qty("1000"),
                unit_price=Decimal("3.85"),
                schedule=[
                    ScheduleLine(schedule_id="1", delivery_date=dt.date(2025, 3, 28), quantity=qty("600"),
                                 confirmed_quantity=qty("600")),
                    ScheduleLine(schedule_id="2", delivery_date=dt.date(2025, 4, 11), quantity=qty("400")),
                ],
            ),
        ],
    ),
    "production_order": ProductionOrder(
        order_id="MO-100077", item_id="FG-100", location_id="P1000", quantity=qty("24"),
        completed_quantity=qty("8"), start_date=D0, due_date=dt.date(2025, 3, 18), status="in_progress",
        bom_alternative="1", routing_alternative="1",
        components=[
            ComponentRequirement(line_id="0001", item_id="RM-200", quantity=qty("48"), required_date=D0,
                                 issued_quantity=qty("16")),
            ComponentRequirement(line_id="0002", item_id="RM-300", quantity=qty("18", "KG"), required_date=D0),
        ],
    ),
    "production_completion": ProductionCompletion(
        completion_id="CONF-5521", production_order_id="MO-100077", operation_id="0020", work_center_id="ASSY1",
        item_id="FG-100", location_id="P1000", good_quantity=qty("8"), scrap_quantity=qty("1"),
        lot="L2025-031", completed_at=T0,
    ),
    "supplier_confirmation": SupplierConfirmation(
        purchase_order_id="4500017001", line_id="00010", schedule_id="2", supplier_id="S-4711", status="changed",
        confirmed_quantity=qty("350"), confirmed_date=dt.date(2025, 4, 14), confirmed_at=T0,
        supplier_reference="AB-2025-771",
    ),
    "shipment_notice": ShipmentNotice(
        shipment_id="ASN-77120", supplier_id="S-4711", to_location_id="P1000", carrier="DHL Freight",
        tracking_number="JJD000390007", shipped_at=T0, expected_arrival=T0 + dt.timedelta(days=2),
        status="in_transit",
        lines=[ShipmentLine(line_id="1", item_id="RM-200", quantity=qty("600"), lot="AC-2503-11",
                            purchase_order_id="4500017001", purchase_order_line_id="00010")],
    ),
    "shipment_milestone": ShipmentMilestone(
        shipment_id="ASN-77120", milestone="customs_cleared", occurred_at=T0 + dt.timedelta(hours=20),
        place="Waidhaus border crossing", carrier="DHL Freight", estimated_arrival=T0 + dt.timedelta(days=2),
    ),
    "plan_run": PlanRun(
        plan_run_id="RUN-2025-03-14-01", planning_system="frepple", started_at=T0,
        finished_at=T0 + dt.timedelta(minutes=7), horizon_start=D0, horizon_end=dt.date(2025, 9, 14),
        status="completed", plan_cut_sequence=918_224,
    ),
    "forecast": Forecast(
        item_id="FG-100", location_id="P1000", forecast_type="consensus", period_start=dt.date(2025, 4, 1),
        period_end=dt.date(2025, 4, 30), quantity=qty("410"),
    ),
    "safety_stock_target": SafetyStockTarget(
        item_id="FG-100", location_id="P1000", valid_from=dt.date(2025, 4, 1), quantity=qty("55"),
        method="statistical", service_level_percent=Decimal("97.5"), plan_run_id="RUN-2025-03-14-01",
    ),
    "planned_order": PlannedOrder(
        planned_order_id="PLN-000981", plan_run_id="RUN-2025-03-14-01", order_type="buy", item_id="RM-200",
        location_id="P1000", supplier_id="S-4711", quantity=qty("1500"), start_date=D0,
        due_date=dt.date(2025, 3, 28), status="approved",
    ),
    "machine_downtime": MachineDowntime(
        event_id="EVT-MD-1", occurred_at=T0, location_id="P1000", source_system="mes-munich",
        work_center_id="ASSY1", started_at=T0 - dt.timedelta(minutes=5),
        expected_end=T0 + dt.timedelta(hours=3), reason_code="HYD-LEAK",
    ),
    "supplier_delay": SupplierDelay(
        event_id="EVT-SD-1", occurred_at=T0, location_id="P1000", supplier_id="S-4711",
        purchase_order_id="4500017001", line_id="00010", item_id="RM-200", quantity=qty("400"),
        original_date=dt.date(2025, 4, 11), new_date=dt.date(2025, 4, 18), reason_code="CAPACITY",
    ),
    "quality_hold": QualityHold(
        event_id="EVT-QH-1", occurred_at=T0, location_id="P1000", hold_id="QN-300112", item_id="RM-200",
        lot="AC-2503-11", quantity=qty("600"), reason_code="DIM-OOT", reason="bore diameter out of tolerance",
    ),
    "demand_spike": DemandSpike(
        event_id="EVT-DS-1", occurred_at=T0, location_id="P1000", item_id="FG-100", quantity=qty("150"),
        window_start=dt.date(2025, 4, 1), window_end=dt.date(2025, 4, 30), customer_id="C-310",
        reason="competitor outage",
    ),
}
