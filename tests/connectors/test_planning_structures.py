"""Bills of material, production orders and forecasts on the simulated planning platform, over real HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from tests.fixtures import served

from syncfabric.config import load_estate
from syncfabric.connectors.base import OutboundRecord
from syncfabric.connectors.planning.configuration import PlanningConfig
from syncfabric.connectors.planning.connector import PlanningConnector
from syncfabric.flows.runtime import Runtime
from syncfabric.model import Quantity
from syncfabric.model.base import Record
from syncfabric.model.master import Calendar, Item, Location, Shift
from syncfabric.model.planning import Forecast
from syncfabric.model.structures import BillOfMaterial, BomLine, Routing, RoutingOperation, WorkCenter
from syncfabric.model.transactions import ProductionOrder
from syncfabric.sandbox.planning_platform import create_app
from syncfabric.store import IncomingRecord, open_store

TOKEN = "plan-token"


def make_connector(base_url: str) -> PlanningConnector:
    return PlanningConnector("plan", PlanningConfig(base_url=base_url), {"token": TOKEN})


def out(record: Record, version: int = 1) -> OutboundRecord:
    return OutboundRecord(record.key, version, msgspec.to_builtins(record))


def gone(key: str, version: int) -> OutboundRecord:
    return OutboundRecord(key, version, None)


base_url = served(lambda: create_app(token=TOKEN))


@pytest.fixture
def connector(base_url: str, control: httpx.Client) -> Iterator[PlanningConnector]:
    with make_connector(base_url) as opened:
        assert isinstance(opened, PlanningConnector)
        for entity, records in (("location", [Location(location_id="DE01", kind="plant")]),
                                ("item", [Item(item_id=name, base_unit="EA") for name in
                                          ("CHAIR", "LEG", "SEAT", "SCREW", "CHIPS", "KIT")])):
            assert opened.write(entity, [out(record) for record in records]).rejected == {}
        yield opened


def platform(base_url: str, entity: str, app: str = "input", **filters: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base_url}/api/{app}/{entity}/", params=filters,
                         headers={"Authorization": f"Bearer {TOKEN}"})
    response.raise_for_status()
    return response.json()


def qty(value: str, unit: str = "EA") -> Quantity:
    return Quantity(value=Decimal(value), unit=unit)


def chair_bom(*lines: BomLine, location: str = "DE01", alternative: str = "") -> BillOfMaterial:
    return BillOfMaterial(item_id="CHAIR", location_id=location, alternative=alternative, base_quantity=qty("10"),
                          lines=list(lines) or [
                              BomLine(line_id="10", component_id="LEG", quantity_per=qty("40")),
                              BomLine(line_id="20", component_id="SEAT", quantity_per=qty("10"),
                                      scrap_percent=Decimal("5")),
                              BomLine(line_id="30", component_id="SCREW", quantity_per=qty("80")),
                              BomLine(line_id="31", component_id="SCREW", quantity_per=qty("20")),
                              BomLine(line_id="40", component_id="KIT", quantity_per=qty("1"), fixed_quantity=True),
                              BomLine(line_id="50", component_id="CHIPS", quantity_per=qty("-2", "KG")),
                          ])


def materials(base_url: str, operation: str = "CHAIR @ DE01") -> dict[str, tuple[str, float, float]]:
    return {row["item"]: (row["type"], row["quantity"], row["quantity_fixed"])
            for row in platform(base_url, "operationmaterial", operation=operation)}


def test_a_bill_of_material_becomes_an_operation_with_its_materials(
        connector: PlanningConnector, base_url: str, control: httpx.Client) -> None:
    outcome = connector.write("bill_of_material", [out(chair_bom())])
    assert outcome.accepted == ["CHAIR|DE01|"] and outcome.rejected == {}

    [operation] = platform(base_url, "operation")
    assert (operation["name"], operation["item"], operation["location"], operation["type"]) == (
        "CHAIR @ DE01", "CHAIR", "DE01", "time_per")
    assert materials(base_url) == {
        "LEG": ("start", -4.0, 0.0),
        "SEAT": ("start", pytest.approx(-1.05), 0.0),  # 5 % scrap
        "SCREW": ("start", -10.0, 0.0),  # two lines of one component are summed
        "KIT": ("start", 0.0, -1.0),  # per order, not per unit
        "CHIPS": ("end", 0.2, 0.0),  # a by-product is produced
    }

    before = control.get("/received").json()["records"]
    assert connector.write("bill_of_material", [out(chair_bom())]).accepted == ["CHAIR|DE01|"]
    assert control.get("/received").json()["records"] == before, "re-sending changes nothing"


def test_a_new_version_deletes_the_components_it_no_longer_has(
        connector: PlanningConnector, base_url: str) -> None:
    connector.write("bill_of_material", [out(chair_bom())])
    smaller = chair_bom(BomLine(line_id="10", component_id="LEG", quantity_per=qty("40")),
                        BomLine(line_id="20", component_id="SEAT", quantity_per=qty("20")))
    assert connector.write("bill_of_material", [out(smaller, version=2)]).rejected == {}
    assert materials(base_url) == {"LEG": ("start", -4.0, 0.0), "SEAT": ("start", -2.0, 0.0)}

    assert connector.write("bill_of_material", [gone("CHAIR|DE01|", 3)]).accepted == ["CHAIR|DE01|"]
    assert platform(base_url, "operation") == [] and platform(base_url, "operationmaterial") == []
    assert connector.write("bill_of_material", [out(smaller, version=2)]).accepted == ["CHAIR|DE01|"]
    assert platform(base_url, "operation") == [], "a late older version does not bring the BOM back"


def test_bad_boms_are_rejected_one_by_one(connector: PlanningConnector, base_url: str) -> None:
    unknown = chair_bom(BomLine(line_id="10", component_id="GHOST", quantity_per=qty("1")), alternative="B")
    outcome = connector.write("bill_of_material", [out(chair_bom(location="")), out(unknown), out(chair_bom())])
    assert outcome.accepted == ["CHAIR|DE01|"]
    assert "cannot be planned" in outcome.rejected["CHAIR||"]
    assert outcome.rejected["CHAIR|DE01|B"] == "operationmaterial: item: unknown item 'GHOST'"


def test_production_orders_are_manufacturing_orders_of_their_bom(
        connector: PlanningConnector, base_url: str) -> None:
    connector.write("bill_of_material", [out(chair_bom())])
    order = ProductionOrder(order_id="MO-1", item_id="CHAIR", location_id="DE01", quantity=qty("50"),
                            completed_quantity=qty("20"), start_date=dt.date(2026, 6, 1),
                            due_date=dt.date(2026, 6, 3), status="in_progress")
    orphan = ProductionOrder(order_id="MO-2", item_id="SEAT", location_id="DE01", quantity=qty("5"),
                             start_date=dt.date(2026, 6, 1), due_date=dt.date(2026, 6, 2))
    outcome = connector.write("production_order", [out(order), out(orphan)])
    assert outcome.accepted == ["MO-1"]
    assert outcome.rejected["MO-2"] == "operation: unknown operation 'SEAT @ DE01'"
    [mo] = platform(base_url, "manufacturingorder")
    assert (mo["reference"], mo["operation"], mo["quantity"], mo["quantity_completed"], mo["status"]) == (
        "MO-1", "CHAIR @ DE01", 50.0, 20.0, "confirmed")
    assert (mo["startdate"], mo["enddate"]) == ("2026-06-01T00:00:00", "2026-06-03T00:00:00")
    assert connector.write("production_order", [gone("MO-1", 2)]).accepted == ["MO-1"]
    assert platform(base_url, "manufacturingorder") == []


def june(forecast_type: str, quantity: str, version: int = 1) -> Any:
    return out(Forecast(item_id="CHAIR", location_id="DE01", forecast_type=forecast_type,  # type: ignore[arg-type]
                        period_start=dt.date(2026, 6, 1), period_end=dt.date(2026, 6, 30), quantity=qty(quantity)),
               version)


def test_forecast_types_are_measures_of_one_bucket(connector: PlanningConnector, base_url: str) -> None:
    outcome = connector.write("forecast", [june("final", "120"), june("statistical", "100"), june("sales", "90")])
    assert outcome.rejected == {}
    [header] = platform(base_url, "forecast", app="forecast")
    assert (header["name"], header["item"], header["location"], header["planned"]) == (
        "CHAIR @ DE01", "CHAIR", "DE01", True)
    [bucket] = platform(base_url, "forecastplan", app="forecast")
    assert (bucket["startdate"], bucket["enddate"]) == ("2026-06-01T00:00:00", "2026-07-01T00:00:00")
    assert bucket["value"] == {"forecastoverride": 120.0, "forecastbaseline": 100.0, "forecast_sales": 90.0}

    connector.write("forecast", [june("final", "130", version=2), june("final", "125", version=1)])
    assert platform(base_url, "forecastplan", app="forecast")[0]["value"]["forecastoverride"] == 130.0

    assert connector.write("forecast", [gone("CHAIR|DE01|statistical|2026-06-01", 2)]).rejected == {}
    assert platform(base_url, "forecastplan", app="forecast")[0]["value"] == {
        "forecastoverride": 130.0, "forecast_sales": 90.0}


ESTATE = """\
version: 1
store: sqlite:///sf.db
systems:
  plan:
    kind: planning
    connection: {{base_url: "{base_url}"}}
    credentials: {{token: {{env: PLAN_TOKEN}}}}
flows:
  to-plan: {{direction: outbound, system: plan, entities: [location, item, bill_of_material, production_order],
            mode: changes}}
"""


def test_an_outbound_flow_sends_structures_in_dependency_order(
        base_url: str, control: httpx.Client, tmp_path: Path) -> None:
    (tmp_path / "estate.yaml").write_text(ESTATE.format(base_url=base_url))
    loaded = load_estate(tmp_path / "estate.yaml", environ={"PLAN_TOKEN": TOKEN})
    order = ProductionOrder(order_id="MO-9", item_id="CHAIR", location_id="DE01", quantity=qty("5"),
                            start_date=dt.date(2026, 6, 1), due_date=dt.date(2026, 6, 2), status="planned")
    with open_store(loaded.store_url) as store, store.transaction() as tx:
        for record in [order, chair_bom(), *(Item(item_id=name, base_unit="EA") for name in
                                             ("CHAIR", "LEG", "SEAT", "SCREW", "CHIPS", "KIT")),
                       Location(location_id="DE01", kind="plant")]:
            tx.apply(record.entity, [IncomingRecord(record.key, msgspec.json.encode(record))])
    with Runtime(loaded) as runtime:
        result = runtime.run_flow("to-plan")
        assert result.quarantined == 0 and result.records_out == 9
    assert [mo["status"] for mo in platform(base_url, "manufacturingorder")] == ["approved"]
    assert len(materials(base_url)) == 5


def test_a_calendar_becomes_buckets_for_shifts_holidays_and_extra_days(
        connector: PlanningConnector, base_url: str) -> None:
    calendar = Calendar(calendar_id="DE01-2SHIFT", name="Munich two shifts", working_days=["mon", "tue", "fri"],
                        shifts=[Shift(name="early", start=dt.time(6), end=dt.time(14)),
                                Shift(name="night", start=dt.time(22), end=dt.time(6))],
                        holidays=[dt.date(2026, 5, 1)], extra_working_days=[dt.date(2026, 5, 9)])
    assert connector.write("calendar", [out(calendar)]).rejected == {}
    [header] = platform(base_url, "calendar")
    assert (header["name"], header["defaultvalue"]) == ("DE01-2SHIFT", 0.0)
    buckets = {(b["startdate"], b["starttime"]): b for b in platform(base_url, "calendarbucket")}

    def days(bucket: dict[str, Any]) -> str:
        return "".join(day[:2] for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                           "sunday") if bucket[day])

    early = buckets["1971-01-01T00:00:00", "06:00:00"]
    assert (early["endtime"], early["value"], early["priority"], days(early)) == ("14:00:00", 1.0, 10.0, "motufr")
    evening = buckets["1971-01-01T00:00:00", "22:00:00"]
    morning = buckets["1971-01-01T00:00:00", "00:00:00"]
    assert (evening["endtime"], days(evening)) == ("23:59:59", "motufr")
    assert (morning["endtime"], days(morning)) == ("06:00:00", "tuwesa"), "the night ends the day after"
    holiday = buckets["2026-05-01T00:00:00", "00:00:00"]
    assert (holiday["value"], holiday["priority"], holiday["enddate"]) == (0.0, 1.0, "2026-05-02T00:00:00")
    assert buckets["2026-05-09T00:00:00", "00:00:00"]["value"] == 1.0
    assert len(buckets) == 5

    one_shift = msgspec.structs.replace(calendar, shifts=[Shift(name="day", start=dt.time(7), end=dt.time(15))],
                                        holidays=[])
    assert connector.write("calendar", [out(one_shift, version=2)]).rejected == {}
    assert sorted((b["startdate"], b["starttime"]) for b in platform(base_url, "calendarbucket")) == [
        ("1971-01-01T00:00:00", "07:00:00"), ("2026-05-09T00:00:00", "00:00:00")]
    assert connector.write("calendar", [gone("DE01-2SHIFT", 3)]).rejected == {}
    assert platform(base_url, "calendar") == [] and platform(base_url, "calendarbucket") == []


def test_a_routing_gives_the_bom_operation_its_times_and_resource_loads(
        connector: PlanningConnector, base_url: str) -> None:
    centers = [WorkCenter(work_center_id=wc, location_id="DE01", capacity_per_day=qty("16", "h"))
               for wc in ("SAW", "PAINT", "PACK")]
    assert connector.write("work_center", [out(center) for center in centers]).rejected == {}
    connector.write("bill_of_material", [out(chair_bom())])
    routing = Routing(item_id="CHAIR", location_id="DE01", operations=[
        RoutingOperation(sequence=10, operation_id="cut", work_center_id="SAW", setup_time=Decimal(30),
                         run_time_per_unit=Decimal(6)),
        RoutingOperation(sequence=20, operation_id="paint", work_center_id="PAINT", run_time_per_unit=Decimal("0.1"),
                         post_time=Decimal(2), time_unit="h"),
        RoutingOperation(sequence=30, operation_id="recut", work_center_id="SAW", run_time_per_unit=Decimal(4)),
    ])
    assert connector.write("routing", [out(routing)]).rejected == {}
    [operation] = platform(base_url, "operation")
    assert (operation["duration"], operation["duration_per"], operation["posttime"]) == (
        "00:30:00", "00:16:00", "02:00:00")
    assert operation["type"] == "time_per" and len(materials(base_url)) == 5, "the BOM's part stays"
    loads = {row["resource"] for row in platform(base_url, "operationresource", operation="CHAIR @ DE01")}
    assert loads == {"SAW @ DE01", "PAINT @ DE01"}

    packed = msgspec.structs.replace(routing, operations=[
        RoutingOperation(sequence=10, operation_id="pack", work_center_id="PACK", run_time_per_unit=Decimal(1))])
    assert connector.write("routing", [out(packed, version=2)]).rejected == {}
    assert {row["resource"] for row in platform(base_url, "operationresource")} == {"PACK @ DE01"}

    assert connector.write("routing", [gone("CHAIR|DE01|", 3)]).rejected == {}
    [operation] = platform(base_url, "operation")
    assert operation["duration_per"] is None and platform(base_url, "operationresource") == []
    assert len(materials(base_url)) == 5
