"""The planning platform's netting, driven over its real HTTP API: what it proposes from what it received."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from syncfabric.sandbox.planning_mrp import duration_days, reference
from syncfabric.sandbox.planning_platform import create_app
from syncfabric.sandbox.server import serve

TODAY = "2026-11-03"


@pytest.fixture
def platform() -> Iterator[httpx.Client]:
    with serve(create_app()) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def put(client: httpx.Client, entity: str, *records: dict) -> None:
    answer = client.put(f"/api/input/{entity}/", json=list(records))
    assert answer.status_code == 200, answer.text


def plan(client: httpx.Client) -> dict:
    answer = client.post("/api/_sandbox/plan", params={"today": TODAY})
    assert answer.status_code == 200, answer.text
    return answer.json()


def planned(client: httpx.Client) -> dict[str, dict]:
    """Planned orders by ``item@location``, checked to carry their stable reference."""
    rows = client.get("/api/output/plannedorder/").json()
    assert all(row["reference"] == reference(row["item"], row["location"]) for row in rows)
    return {f"{row['item']}@{row['location']}": row for row in rows}


def seed(client: httpx.Client) -> None:
    """A pump (FG) made at US-PAL from two housings and one motor per pump, both bought."""
    put(client, "location", {"name": "US-PAL"})
    put(client, "item", {"name": "PUMP"}, {"name": "HOUSING"}, {"name": "MOTOR"})
    put(client, "buffer", {"item": "PUMP", "location": "US-PAL", "onhand": 10, "minimum": 5},
        {"item": "HOUSING", "location": "US-PAL", "onhand": 30, "minimum": 0},
        {"item": "HOUSING", "location": "US-PAL", "batch": "LOT1", "onhand": 4},
        {"item": "MOTOR", "location": "US-PAL", "onhand": 0, "minimum": 2})
    put(client, "operation", {"name": "assemble PUMP", "item": "PUMP", "location": "US-PAL", "type": "fixed_time",
                              "duration": "2 00:00:00"})
    put(client, "operationmaterial", {"operation": "assemble PUMP", "item": "PUMP", "quantity": 1, "type": "end"},
        {"operation": "assemble PUMP", "item": "HOUSING", "quantity": -2, "type": "start"},
        {"operation": "assemble PUMP", "item": "MOTOR", "quantity": -1, "type": "start"})
    put(client, "supplier", {"name": "173000001"}, {"name": "173000002"})
    put(client, "itemsupplier",
        {"item": "HOUSING", "supplier": "173000001", "location": "US-PAL", "leadtime": "7 00:00:00",
         "sizemultiple": 10},
        {"item": "MOTOR", "supplier": "173000002", "leadtime": "10 00:00:00"})
    put(client, "customer", {"name": "ACME"})
    put(client, "demand", {"name": "SO-1", "item": "PUMP", "customer": "ACME", "location": "US-PAL",
                           "due": "2026-11-20T00:00:00", "quantity": 40, "status": "open"})
    put(client, "purchaseorder", {"reference": "4500000001", "item": "MOTOR", "supplier": "173000002",
                                  "location": "US-PAL", "quantity": 8, "status": "confirmed"})


def test_netting_explodes_the_bill_of_materials_and_sizes_by_the_supplier(platform: httpx.Client) -> None:
    seed(platform)
    summary = plan(platform)
    assert summary["errors"] == [] and summary["unsourced"] == []
    orders = planned(platform)
    pump = orders["PUMP@US-PAL"]
    # 5 safety + 40 demand - 10 on hand = 35, made in 2 days, due on the demand date
    assert (pump["type"], pump["quantity"], pump["startdate"][:10], pump["enddate"][:10]) == (
        "make", 35, "2026-11-18", "2026-11-20")
    housing = orders["HOUSING@US-PAL"]
    # 2 per pump x 35 = 70 - 34 on hand (both batches) = 36, in multiples of 10 → 40; due when assembly starts
    assert (housing["type"], housing["supplier"], housing["quantity"], housing["enddate"][:10]) == (
        "buy", "173000001", 40, "2026-11-18")
    motor = orders["MOTOR@US-PAL"]
    # 35 + 2 safety - 8 confirmed on order = 29; 10 days lead time from today would be 13 Nov, the need is later
    assert (motor["supplier"], motor["quantity"], motor["startdate"][:10]) == ("173000002", 29, "2026-11-08")


def test_running_again_proposes_the_same_orders_once_and_withdraws_what_is_no_longer_needed(
        platform: httpx.Client) -> None:
    seed(platform)
    plan(platform)
    first = planned(platform)
    again = plan(platform)
    assert planned(platform).keys() == first.keys() and again["withdrawn"] == 0
    assert all(row["lastmodified"] == first[key]["lastmodified"] for key, row in planned(platform).items())
    put(platform, "buffer", {"item": "MOTOR", "location": "US-PAL", "onhand": 500, "minimum": 2})
    assert plan(platform)["withdrawn"] == 1
    assert "MOTOR@US-PAL" not in planned(platform)


def test_an_item_short_with_no_way_to_get_it_is_reported_unsourced(platform: httpx.Client) -> None:
    put(platform, "location", {"name": "DE-HAM"})
    put(platform, "item", {"name": "GASKET"})
    put(platform, "buffer", {"item": "GASKET", "location": "DE-HAM", "onhand": 1, "minimum": 20})
    summary = plan(platform)
    assert summary["unsourced"] == ["GASKET@DE-HAM"] and planned(platform) == {}


def test_durations_read_as_whole_days() -> None:
    assert [duration_days(v) for v in ("7 00:00:00", "12:00:00", 86_400 * 3, None)] == [7, 1, 3, 0]
    with pytest.raises(ValueError, match="not a duration"):
        duration_days("a week")
