"""The planning connector against the simulated planning platform, over real HTTP on the loopback interface."""

from __future__ import annotations

import datetime as dt
import email.utils
import socket
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from tests.fixtures import served

from syncfabric.connectors.base import OutboundRecord
from syncfabric.connectors.planning.configuration import PlanningConfig
from syncfabric.connectors.planning.connector import PlanningConnector
from syncfabric.connectors.planning.exceptions import retry_after, translate_error
from syncfabric.connectors.registry import config_type, connector_class
from syncfabric.errors import PermanentError, TransientError
from syncfabric.model import Quantity
from syncfabric.model.base import Record
from syncfabric.model.master import Item, ItemLocation, ItemSupplier, Location
from syncfabric.model.structures import WorkCenter
from syncfabric.model.transactions import (
    DemandLine,
    InventoryBalance,
    PurchaseOrder,
    PurchaseOrderLine,
    SalesOrder,
    ScheduleLine,
)
from syncfabric.sandbox.planning_platform import create_app
from syncfabric.sandbox.server import serve

TOKEN = "plan-token"
AS_OF = dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC)


base_url = served(lambda: create_app(token=TOKEN))


@pytest.fixture
def connector(base_url: str, control: httpx.Client) -> Iterator[PlanningConnector]:
    with make_connector(base_url) as opened:
        assert isinstance(opened, PlanningConnector)
        yield opened


def make_connector(base_url: str, token: str = TOKEN, **settings: Any) -> PlanningConnector:
    config = msgspec.convert({"base_url": base_url, **settings}, config_type("planning"))
    return PlanningConnector("plan", config, {"token": token})


def out(record: Record, version: int = 1) -> OutboundRecord:
    return OutboundRecord(record.key, version, msgspec.to_builtins(record))


def gone(entity_key: str, version: int) -> OutboundRecord:
    return OutboundRecord(entity_key, version, None)


def platform(base_url: str, entity: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base_url}/api/input/{entity}/", headers={"Authorization": f"Bearer {TOKEN}"})
    response.raise_for_status()
    return response.json()


def ea(value: str) -> Quantity:
    return Quantity(value=Decimal(value), unit="EA")


ITEMS = [Item(item_id="BOLT-M8", description="Bolt M8", base_unit="EA", unit_cost=Decimal("0.12"), category="fix"),
         Item(item_id="NUT-M8", base_unit="EA")]
LOCATIONS = [Location(location_id="DE01", name="Plant Munich", kind="plant", parent_id="EU"),
             Location(location_id="EU", name="Europe", kind="region")]


def load_masters(connector: PlanningConnector) -> None:
    for entity, records in (("item", ITEMS), ("location", LOCATIONS)):
        outcome = connector.write(entity, [out(r) for r in records])
        assert outcome.rejected == {}


def test_registered_for_the_planning_kind() -> None:
    assert connector_class("planning") is PlanningConnector
    assert PlanningConnector.secret_names == ("token",)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"base_url": "http://x", "batch_size": 0}, PlanningConfig)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"base_url": "http://x", "password": "no"}, PlanningConfig)


def test_canonical_records_are_visible_on_the_platform(connector: PlanningConnector, base_url: str) -> None:
    connector.test_connection()
    load_masters(connector)  # the child location comes first in the batch; its parent is written before it
    assert connector.write("item_location", [out(ItemLocation(item_id="BOLT-M8", location_id="DE01",
                                                              safety_stock=Decimal("250")))]).accepted == [
        "BOLT-M8|DE01"
    ]
    outcome = connector.write("inventory_balance", [
        out(InventoryBalance(item_id="BOLT-M8", location_id="DE01", on_hand=ea("1200"), as_of=AS_OF)),
        out(InventoryBalance(item_id="NUT-M8", location_id="DE01", lot="L7", on_hand=ea("40.5"), as_of=AS_OF)),
    ])
    assert outcome.accepted == ["BOLT-M8|DE01|", "NUT-M8|DE01|L7"]

    bolt = platform(base_url, "item")[0]
    assert (bolt["name"], bolt["description"], bolt["uom"], bolt["cost"], bolt["category"], bolt["subcategory"]) == (
        "BOLT-M8", "Bolt M8", "EA", 0.12, "fix", "raw")
    assert bolt["source"] == "syncfabric"
    assert {r["name"]: r["owner"] for r in platform(base_url, "location")} == {"DE01": "EU", "EU": None}
    buffers = {(b["item"], b["batch"]): b for b in platform(base_url, "buffer")}
    assert (buffers["BOLT-M8", ""]["minimum"], buffers["BOLT-M8", ""]["onhand"]) == (250.0, 1200.0)
    assert buffers["NUT-M8", "L7"]["onhand"] == 40.5
    assert buffers["BOLT-M8", ""]["_versions"] == {"item_location": 1, "inventory_balance": 1}


def test_resending_changes_nothing(connector: PlanningConnector, control: httpx.Client) -> None:
    load_masters(connector)
    before = control.get("/received").json()
    again = connector.write("item", [out(r) for r in ITEMS])
    assert again.accepted == ["BOLT-M8", "NUT-M8"]
    after = control.get("/received").json()
    assert after["records"] == before["records"]
    assert after["effects"]["item"]["duplicate"] == 2
    assert after["write_requests"] == before["write_requests"] + 1


def test_an_older_version_does_not_overwrite_a_newer_one(connector: PlanningConnector, base_url: str) -> None:
    load_masters(connector)
    newer = Item(item_id="NUT-M8", base_unit="EA", unit_cost=Decimal("2"))
    older = Item(item_id="NUT-M8", base_unit="EA", unit_cost=Decimal("1"))
    connector.write("item", [out(newer, version=5)])
    assert connector.write("item", [out(older, version=4)]).accepted == ["NUT-M8"]
    assert {r["name"]: r["cost"] for r in platform(base_url, "item")}["NUT-M8"] == 2.0


def test_deletions(connector: PlanningConnector, base_url: str) -> None:
    load_masters(connector)
    connector.write("item_location", [out(ItemLocation(item_id="NUT-M8", location_id="EU", safety_stock=Decimal(9)))])
    connector.write("inventory_balance", [out(InventoryBalance(item_id="NUT-M8", location_id="EU", on_hand=ea("3"),
                                                               as_of=AS_OF))])
    # deleting item-location parameters clears the safety stock and keeps the stock on the shared buffer
    assert connector.write("item_location", [gone("NUT-M8|EU", 2)]).accepted == ["NUT-M8|EU"]
    [buffer] = platform(base_url, "buffer")
    assert (buffer["minimum"], buffer["onhand"]) == (None, 3.0)
    assert [r.data for page in connector.read_full("item_location") for r in page.records] == []
    assert connector.write("item", [gone("BOLT-M8", 2)]).accepted == ["BOLT-M8"]
    assert [r["name"] for r in platform(base_url, "item")] == ["NUT-M8"]


def test_a_rejected_record_is_named_with_its_reason(connector: PlanningConnector) -> None:
    load_masters(connector)
    outcome = connector.write("inventory_balance", [
        out(InventoryBalance(item_id="BOLT-M8", location_id="DE01", on_hand=ea("1"), as_of=AS_OF)),
        out(InventoryBalance(item_id="GHOST", location_id="DE01", on_hand=ea("1"), as_of=AS_OF)),
        OutboundRecord("NUT-M8|DE01|", 1, {"item_id": "NUT-M8", "location_id": "DE01"}),
        OutboundRecord("NUT-M8|XX|", 1, msgspec.to_builtins(
            InventoryBalance(item_id="NUT-M8", location_id="DE01", on_hand=ea("1"), as_of=AS_OF))),
    ])
    assert outcome.accepted == ["BOLT-M8|DE01|"]
    assert outcome.rejected["GHOST|DE01|"] == "item: unknown item 'GHOST'"
    assert outcome.rejected["NUT-M8|DE01|"].startswith("cannot shape for buffer: KeyError")
    assert "does not match key" in outcome.rejected["NUT-M8|XX|"]


def test_writes_are_sent_in_batches(base_url: str, control: httpx.Client) -> None:
    with make_connector(base_url, batch_size=2) as connector:
        items = [Item(item_id=f"I{n}", base_unit="EA") for n in range(5)]
        assert len(connector.write("item", [out(i) for i in items]).accepted) == 5
        # deletions go in their own requests, in order
        connector.write("item", [gone("I0", 2), out(items[1], 2), gone("I2", 2)])
    assert control.get("/received").json()["write_requests"] == 3 + 3


def test_read_full_returns_what_was_written(connector: PlanningConnector, base_url: str) -> None:
    load_masters(connector)
    connector.write("item_location", [out(ItemLocation(item_id="BOLT-M8", location_id="DE01",
                                                       safety_stock=Decimal(7)))])
    connector.write("inventory_balance", [
        out(InventoryBalance(item_id=i.item_id, location_id="DE01", lot=lot, on_hand=ea("5"), as_of=AS_OF))
        for i in ITEMS for lot in ("", "L1")
    ])
    [page] = list(connector.read_full("item_location"))
    assert page.complete
    assert [(r.location, r.data["minimum"]) for r in page.records] == [("buffer:BOLT-M8|DE01", 7.0)]
    assert "onhand" not in page.records[0].data

    with make_connector(base_url, read_page_size=3) as small_pages:
        pages = list(small_pages.read_full("inventory_balance"))
        assert [len(p.records) for p in pages] == [3, 1]
        assert [p.complete for p in pages] == [False, True]
        assert [r.location for p in pages for r in p.records] == [
            "buffer:BOLT-M8|DE01|", "buffer:BOLT-M8|DE01|L1", "buffer:NUT-M8|DE01|", "buffer:NUT-M8|DE01|L1"]
        resumed = list(small_pages.read_full("inventory_balance", cursor=pages[0].cursor))
        assert [r.data["batch"] for p in resumed for r in p.records] == ["L1"]
    items = [r.data for page in connector.read_full("item") for r in page.records]
    assert [i["name"] for i in items] == ["BOLT-M8", "NUT-M8"]
    raw = [r for page in connector.read_full("buffer") for r in page.records]
    assert len(raw) == 4
    assert raw[0].data["minimum"] == 7.0


def test_sources_of_supply_and_work_centers(connector: PlanningConnector, base_url: str) -> None:
    load_masters(connector)
    supply = ItemSupplier(item_id="BOLT-M8", supplier_id="ACME", lead_time_days=Decimal("2.5"),
                          minimum=ea("100"), multiple=ea("50"), unit_price=Decimal("12"),
                          price_unit=ea("100"), valid_to=dt.date(2026, 12, 31))
    center = WorkCenter(work_center_id="PRESS1", location_id="DE01", capacity_per_day=Quantity(
        value=Decimal(16), unit="h"), parallel_units=2, efficiency_percent=Decimal(85))
    assert connector.write("item_supplier", [out(supply)]).accepted == ["BOLT-M8|ACME|"]
    assert connector.write("work_center", [out(center)]).accepted == ["PRESS1|DE01"]
    [source] = platform(base_url, "itemsupplier")
    assert (source["leadtime"], source["sizeminimum"], source["sizemultiple"], source["cost"]) == (
        "2 12:00:00", 100.0, 50.0, 0.12)
    assert source["effective_end"] == "2027-01-01T00:00:00"
    [resource] = platform(base_url, "resource")
    assert (resource["name"], resource["type"], resource["maximum"], resource["efficiency"]) == (
        "PRESS1 @ DE01", "default", 2.0, 85.0)
    [page] = list(connector.read_full("work_center"))
    assert [r.location for r in page.records] == ["resource:PRESS1|DE01"]
    assert connector.write("work_center", [gone("PRESS1|DE01", 2)]).accepted == ["PRESS1|DE01"]
    assert platform(base_url, "resource") == []


def test_sales_order_lines_become_demands(connector: PlanningConnector, base_url: str) -> None:
    load_masters(connector)
    lines = [DemandLine(line_id="10", item_id="BOLT-M8", location_id="DE01", quantity=ea("100"),
                        due_date=dt.date(2026, 4, 1), shipped_quantity=ea("30"), status="partially_shipped"),
             DemandLine(line_id="20", item_id="NUT-M8", location_id="DE01", quantity=ea("5"),
                        due_date=dt.date(2026, 4, 2), priority=1)]
    order = SalesOrder(order_id="SO1", customer_id="CUST9", lines=lines)
    assert connector.write("sales_order", [out(order), out(SalesOrder(order_id="SO2", lines=lines[1:]))]).accepted == [
        "SO1", "SO2"]
    demands = {d["name"]: d for d in platform(base_url, "demand")}
    assert sorted(demands) == ["SO1|10", "SO1|20", "SO2|20"]
    first = demands["SO1|10"]
    assert (first["item"], first["customer"], first["due"], first["quantity"], first["status"]) == (
        "BOLT-M8", "CUST9", "2026-04-01T00:00:00", 70.0, "open")
    assert demands["SO2|20"]["customer"] == "(no customer)"

    # version 2 drops line 20: its demand goes; a late version 1 does not bring it back
    assert connector.write("sales_order", [out(SalesOrder(order_id="SO1", customer_id="CUST9", lines=lines[:1]), 2)]
                           ).accepted == ["SO1"]
    connector.write("sales_order", [out(order, 1)])
    assert sorted(d["name"] for d in platform(base_url, "demand")) == ["SO1|10", "SO2|20"]
    assert [r.location for page in connector.read_full("sales_order") for r in page.records] == [
        "demand:SO1", "demand:SO2"]
    connector.write("sales_order", [out(SalesOrder(order_id="XSO1", lines=lines[1:]))])
    assert connector.write("sales_order", [gone("SO1", 3)]).accepted == ["SO1"]
    assert [d["name"] for d in platform(base_url, "demand")] == ["SO2|20", "XSO1|20"]
    connector.write("sales_order", [gone("XSO1", 2)])
    # two versions of one order in one write: the second removes what the first added
    full, shrunk = SalesOrder(order_id="SO3", lines=lines), SalesOrder(order_id="SO3", lines=lines[:1])
    assert connector.write("sales_order", [out(full, 1), out(shrunk, 2)]).accepted == ["SO3", "SO3"]
    assert sorted(d["name"] for d in platform(base_url, "demand")) == ["SO2|20", "SO3|10"]


def test_purchase_order_schedule_lines_become_open_supply(connector: PlanningConnector, base_url: str) -> None:
    load_masters(connector)
    line = PurchaseOrderLine(line_id="1", item_id="NUT-M8", location_id="DE01", quantity=ea("300"),
                             received_quantity=ea("120"), schedule=[
                                 ScheduleLine(schedule_id="2", delivery_date=dt.date(2026, 5, 1), quantity=ea("200")),
                                 ScheduleLine(schedule_id="1", delivery_date=dt.date(2026, 4, 1), quantity=ea("100")),
                             ])
    order = PurchaseOrder(order_id="PO7", supplier_id="ACME", order_date=dt.date(2026, 3, 1), lines=[line])
    assert connector.write("purchase_order", [out(order)]).accepted == ["PO7"]
    supply = {p["reference"]: p for p in platform(base_url, "purchaseorder")}
    assert {ref: (p["quantity"], p["status"]) for ref, p in supply.items()} == {
        "PO7|1|1": (0.0, "completed"), "PO7|1|2": (180.0, "confirmed")}
    assert (supply["PO7|1|2"]["startdate"], supply["PO7|1|2"]["enddate"]) == (
        "2026-03-01T00:00:00", "2026-05-01T00:00:00")
    rejected = connector.write("purchase_order", [out(PurchaseOrder(order_id="PO8", supplier_id="ACME", lines=[
        PurchaseOrderLine(line_id="1", item_id="GHOST", location_id="DE01", quantity=ea("1"), schedule=[
            ScheduleLine(schedule_id="1", delivery_date=dt.date(2026, 5, 1), quantity=ea("1"))])]))])
    assert rejected.rejected == {"PO8": "item: unknown item 'GHOST'"}


def test_unshaped_entities_are_refused(connector: PlanningConnector) -> None:
    with pytest.raises(PermanentError, match="no planning shape for 'unit_of_measure'"):
        connector.write("unit_of_measure", [])


# ---- errors ------------------------------------------------------------------------------------------------


def test_429_is_transient_with_retry_after(connector: PlanningConnector, control: httpx.Client) -> None:
    control.post("/faults", json={"fail_next_n": 1, "fail_status": 429, "retry_after": 3})
    with pytest.raises(TransientError) as caught:
        connector.write("item", [out(ITEMS[0])])
    assert caught.value.retry_after == 3.0
    assert (caught.value.system, caught.value.entity) == ("plan", "item")
    assert "429" in str(caught.value)
    assert connector.write("item", [out(ITEMS[0])]).accepted == ["BOLT-M8"]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient(connector: PlanningConnector, control: httpx.Client, status: int) -> None:
    control.post("/faults", json={"fail_next_n": 1, "fail_status": status})
    with pytest.raises(TransientError) as caught:
        connector.write("item", [out(ITEMS[0])])
    assert caught.value.retry_after is None


def test_an_outage_is_transient(connector: PlanningConnector, control: httpx.Client) -> None:
    control.post("/faults", json={"outage": True, "retry_after": 30})
    with pytest.raises(TransientError) as caught:
        list(connector.read_full("item"))
    assert caught.value.retry_after == 30.0


def test_client_errors_are_permanent(connector: PlanningConnector, control: httpx.Client) -> None:
    control.post("/faults", json={"fail_next_n": 1, "fail_status": 400})
    with pytest.raises(PermanentError, match="400"):
        connector.write("item", [out(ITEMS[0])])


def test_bad_credentials_are_permanent(base_url: str, control: httpx.Client) -> None:
    with make_connector(base_url, token="wrong") as connector:
        with pytest.raises(PermanentError, match="401") as caught:
            connector.test_connection()
        assert caught.value.system == "plan"
        with pytest.raises(PermanentError, match="401"):
            connector.write("item", [out(ITEMS[0])])


def test_timeouts_and_refused_connections_are_transient(base_url: str, control: httpx.Client) -> None:
    control.post("/faults", json={"latency_ms": 1500})
    with make_connector(base_url, timeout_seconds=0.2) as connector, pytest.raises(TransientError, match="Timeout"):
        connector.write("item", [out(ITEMS[0])])
    control.post("/faults", json={"latency_ms": 0})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with make_connector(f"http://127.0.0.1:{closed_port}") as connector, pytest.raises(TransientError):
        connector.test_connection()


@pytest.mark.parametrize("answer", [b'{"results": ["ok"]}', b"not json", b'{"status": "ok"}',
                                    b'{"results": [{"status": "ok"}, {"status": "ok"}]}'])
def test_an_answer_without_one_outcome_per_record_is_permanent(answer: bytes) -> None:
    """A platform (or a proxy before it) answering 200 with something else than one outcome object per record:
    nothing is taken as accepted."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})

    with serve(app) as url, make_connector(url) as connector, pytest.raises(PermanentError) as raised:
        connector.write("item", [out(ITEMS[0])])
    assert "per-record results" in str(raised.value) or "outcomes for 1 records" in str(raised.value)


def test_retry_after_as_an_http_date() -> None:
    later = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120), usegmt=True)
    response = httpx.Response(503, headers={"Retry-After": later})
    assert 110 <= (retry_after(response) or 0) <= 120
    assert retry_after(httpx.Response(503, headers={"Retry-After": "soon"})) is None
    error = translate_error(httpx.Response(501), system="plan", entity="item")
    assert isinstance(error, PermanentError)
    assert isinstance(translate_error(httpx.Response(408), system="plan"), TransientError)
    assert isinstance(translate_error(httpx.UnsupportedProtocol("ftp"), system="plan"), PermanentError)
