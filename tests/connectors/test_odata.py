"""The SAP OData connector against the S/4HANA emulator over real HTTP: the example estate's inbound flows through
the Runtime into the store, net change, idempotent purchase order creation, CSRF, throttling and errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import msgspec
import pytest
from tests.fixtures import SAP_ENV, SAP_EXAMPLE, odata_rows, sap_connector, sap_emulator

from syncfabric.config import load_estate
from syncfabric.connectors.base import OutboundRecord
from syncfabric.connectors.odata.connector import plain
from syncfabric.errors import PermanentError, TransientError
from syncfabric.flows.runtime import Runtime
from syncfabric.model import Quantity
from syncfabric.model.planning import PlannedOrder
from syncfabric.sandbox.sap_odata import ROOT
from syncfabric.store import IncomingRecord, Lineage

base_url = sap_emulator()


@pytest.fixture
def runtime(base_url: str, sap: httpx.Client, tmp_path: Path) -> Iterator[Runtime]:
    estate = tmp_path / "estate.yaml"
    estate.write_text(SAP_EXAMPLE.read_text().replace("http://127.0.0.1:8710", base_url))
    with Runtime(load_estate(estate, environ=SAP_ENV)) as opened:
        yield opened




def change_product(sap: httpx.Client, product: str, **fields: object) -> None:
    """As an SAP user would: fetch a CSRF token, then PATCH the product through API_PRODUCT_SRV."""
    token = sap.get(f"{ROOT}/API_PRODUCT_SRV/", headers={"x-csrf-token": "fetch"}).headers["x-csrf-token"]
    response = sap.patch(f"{ROOT}/API_PRODUCT_SRV/A_Product('{product}')", json=fields,
                         headers={"x-csrf-token": token})
    assert response.status_code == 204, response.text


# ---- inbound through the runtime -----------------------------------------------------------------------------


def test_products_stock_and_purchase_orders_arrive_in_the_store(runtime: Runtime, sap: httpx.Client) -> None:
    for flow in ("items-in", "item-locations-in", "inventory-in", "suppliers-in", "purchase-orders-in",
                 "production-orders-in"):
        result = runtime.run_flow(flow)
        assert result.quarantined == 0, runtime.store.quarantine()
    store = runtime.store
    assert store.count("item") == 40 and store.count("supplier") == 6 and store.count("production_order") == 8
    assert store.count("item_location") == len(odata_rows(sap, "API_PRODUCT_SRV/A_ProductPlant"))

    item = msgspec.json.decode(store.get("item", "FG1004").payload)
    assert (item["description"], item["base_unit"], item["item_type"]) == ("Finished good 004", "PC", "finished")

    stock = odata_rows(sap, "API_MATERIAL_STOCK_SRV/A_MatlStkInAcctMod", **{"$filter": "InventoryStockType eq '01'"})
    assert store.count("inventory_balance") == len(stock)
    row = stock[0]
    balance = msgspec.json.decode(store.get("inventory_balance", f"{row['Material']}|{row['Plant']}|").payload)
    assert balance["on_hand"] == {"value": row["MatlWrhsStkQtyInMatlBaseUnit"], "unit": row["MaterialBaseUnit"]}

    orders = odata_rows(sap, "API_PURCHASEORDER_PROCESS_SRV/A_PurchaseOrder",
                   **{"$expand": "to_PurchaseOrderItem/to_ScheduleLine"})
    assert store.count("purchase_order") == len(orders) == 12
    sap_order = orders[0]
    order = msgspec.json.decode(store.get("purchase_order", sap_order["PurchaseOrder"]).payload)
    sap_item = sap_order["to_PurchaseOrderItem"]["results"][0]
    line = order["lines"][0]
    assert (line["item_id"], line["location_id"], line["quantity"]["value"]) == (
        sap_item["Material"], sap_item["Plant"], sap_item["OrderQuantity"])
    schedule = sap_item["to_ScheduleLine"]["results"][0]
    assert line["schedule"][0]["delivery_date"] == plain(schedule["ScheduleLineDeliveryDate"])


def test_next_net_change_run_brings_exactly_the_changed_product(runtime: Runtime, sap: httpx.Client) -> None:
    first = runtime.run_flow("items-in")
    assert first.inserted == 40
    assert runtime.run_flow("items-in").changed == 0
    head = runtime.store.head()
    change_product(sap, "RM1013", GrossWeight="77.5", ProductGroup="L009")

    result = runtime.run_flow("items-in")
    changes = runtime.store.changes(head, entities=["item"])
    assert [(change.entity, change.key) for change in changes] == [("item", "RM1013")]
    assert result.updated == 1 and result.inserted == 0
    item = msgspec.json.decode(runtime.store.get("item", "RM1013").payload)
    assert (item["weight_kg"], item["category"]) == ("77.5", "L009")
    assert runtime.run_flow("items-in").changed == 0


# ---- reading -------------------------------------------------------------------------------------------------


def test_full_read_resumes_from_any_page_cursor_without_loss_or_duplicates(base_url: str, sap: httpx.Client) -> None:
    with sap_connector(base_url) as connector:
        pages = list(connector.read_full("products"))
        assert len(pages) == 3 and pages[-1].complete and pages[-1].cursor is None
        keys = [record.data["Product"] for page in pages for record in page.records]
        assert len(keys) == 40 == len(set(keys))
        resumed = list(connector.read_full("products", pages[0].cursor))
        assert [r.data["Product"] for page in resumed for r in page.records] == keys[15:]


def test_changes_are_paged_by_watermark_and_key_without_skipping_rows_that_move(base_url: str,
                                                                                sap: httpx.Client) -> None:
    with sap_connector(base_url, page_size=7) as connector:
        pages = connector.read_changes("products", None)
        first = next(pages)
        # a product not yet read changes while the read runs: it moves to the end, nothing shifts or is lost
        change_product(sap, "RM1010", GrossWeight="1.25")
        rest = list(pages)
    keys = [r.data["Product"] for page in [first, *rest] for r in page.records]
    assert set(keys) == {row["Product"] for row in odata_rows(sap, "API_PRODUCT_SRV/A_Product")}
    assert keys[-1] == "RM1010" and keys.count("RM1010") == 1
    cursor = msgspec.json.decode(rest[-1].cursor)
    assert cursor["after"] == ["RM1010"]


def test_changes_on_an_edm_datetime_watermark(base_url: str, sap: httpx.Client) -> None:
    partners = {"partners": {"service": "API_BUSINESS_PARTNER", "entity_set": "A_BusinessPartner",
                             "watermark": "LastChangeDate", "watermark_type": "datetime", "key": ["BusinessPartner"]}}
    with sap_connector(base_url, entities=partners) as connector:
        pages = list(connector.read_changes("partners", None))
        dates = [r.data["LastChangeDate"] for page in pages for r in page.records]
        assert len(dates) == 6 and dates == sorted(dates) and all(len(day) == 10 for day in dates)
        again = [r.data["BusinessPartner"] for page in connector.read_changes("partners", pages[-1].cursor)
                 for r in page.records]
    assert again == [pages[-1].records[-1].data["BusinessPartner"]]  # only the overlap: the newest one


def test_stock_records_carry_the_time_they_were_read(base_url: str, sap: httpx.Client) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with sap_connector(base_url) as connector:
        records = [r for page in connector.read_full("stock") for r in page.records]
    assert records and all(r.data["InventoryStockType"] == "01" for r in records)
    assert dt.datetime.fromisoformat(records[0].data["ReadAt"]) >= before
    assert records[0].location.startswith("API_MATERIAL_STOCK_SRV/A_MatlStkInAcctMod(")


def test_throttling_is_retried_honouring_retry_after(base_url: str, sap: httpx.Client) -> None:
    sap.post("/_sandbox/faults", json={"fail_next_n": 2, "fail_status": 429, "retry_after": 0.2}).raise_for_status()
    with sap_connector(base_url) as connector:
        keys = [r.data["Product"] for page in connector.read_full("products") for r in page.records]
    assert len(keys) == 40
    assert sap.get("/_sandbox/faults").json()["injected"] == 2


def test_outage_becomes_a_transient_error_with_the_system(base_url: str, sap: httpx.Client) -> None:
    sap.post("/_sandbox/faults", json={"outage": True}).raise_for_status()
    with sap_connector(base_url) as connector, pytest.raises(TransientError) as caught:
        list(connector.read_full("products"))
    assert caught.value.system == "s4" and caught.value.entity == "products"


def test_odata_errors_become_permanent_errors_with_sap_message(base_url: str, sap: httpx.Client) -> None:
    bad = {"bad": {"service": "API_PRODUCT_SRV", "entity_set": "A_Product", "filter": "Nonsense eq 'x'"}}
    with sap_connector(base_url, entities=bad) as connector, pytest.raises(PermanentError) as caught:
        list(connector.read_full("bad"))
    assert "[/IWBEP/CM_MGW_RT/004]" in str(caught.value) and "'Nonsense' is no property" in str(caught.value)
    assert (caught.value.system, caught.value.entity) == ("s4", "bad")


# ---- writing -------------------------------------------------------------------------------------------------


def planned(order_id: str, *, item: str = "RM1001", plant: str = "1010", quantity: str = "250",
            status: str = "approved", supplier: str | None = "17300002") -> OutboundRecord:
    record = PlannedOrder(planned_order_id=order_id, order_type="buy", item_id=item, location_id=plant,
                          supplier_id=supplier, quantity=Quantity(value=Decimal(quantity), unit="PC"),
                          start_date=dt.date(2026, 11, 2), due_date=dt.date(2026, 11, 20), status=status)
    return OutboundRecord(record.key, 1, msgspec.to_builtins(record))


def purchase_orders_for(sap: httpx.Client, reference: str) -> list[dict]:
    return odata_rows(sap, "API_PURCHASEORDER_PROCESS_SRV/A_PurchaseOrder", **{
        "$filter": f"CorrespncExternalReference eq '{reference}'", "$expand": "to_PurchaseOrderItem/to_ScheduleLine"})


def test_planned_order_sent_twice_creates_one_purchase_order_linked_in_the_xref(runtime: Runtime,
                                                                                sap: httpx.Client) -> None:
    order = planned("PLN-000123")
    with runtime.store.transaction() as tx:
        tx.apply("planned_order", [IncomingRecord(order.key, msgspec.json.encode(order.payload), Lineage("plan"))])
    first = runtime.run_flow("planned-orders-out")
    assert first.records_out == 1 and first.quarantined == 0
    created = purchase_orders_for(sap, "PLN-000123")
    assert len(created) == 1
    number = created[0]["PurchaseOrder"]
    item = created[0]["to_PurchaseOrderItem"]["results"][0]
    assert (created[0]["Supplier"], created[0]["CompanyCode"], item["Material"], item["OrderQuantity"]) == (
        "17300002", "1010", "RM1001", "250")
    assert plain(item["to_ScheduleLine"]["results"][0]["ScheduleLineDeliveryDate"]) == "2026-11-20"
    assert runtime.store.xref("s4", "planned_order", number) == "PLN-000123"

    with runtime.store.transaction() as tx:  # checkpoint lost (a crash before it was committed): sent again
        tx.set_checkpoint("planned-orders-out", "0")
    assert runtime.run_flow("planned-orders-out").records_out == 1
    assert [row["PurchaseOrder"] for row in purchase_orders_for(sap, "PLN-000123")] == [number]


def test_write_refetches_an_expired_csrf_token_once(base_url: str, sap: httpx.Client) -> None:
    with sap_connector(base_url) as connector:
        assert connector.write("planned_order", [planned("PLN-1")]).accepted == ["PLN-1"]
        sap.post("/_sandbox/csrf/expire").raise_for_status()
        outcome = connector.write("planned_order", [planned("PLN-2")])
    assert outcome.accepted == ["PLN-2"] and len(purchase_orders_for(sap, "PLN-2")) == 1


def test_sap_refusal_rejects_that_order_only_with_sap_message(base_url: str, sap: httpx.Client) -> None:
    with sap_connector(base_url) as connector:
        outcome = connector.write("planned_order", [
            planned("PLN-A"), planned("PLN-B", item="NOPE"), planned("PLN-C", supplier=None),
            planned("PLN-D", status="proposed"), OutboundRecord("PLN-E", 2, None), planned("PLN-0000000042")])
    assert sorted(outcome.accepted) == ["PLN-A", "PLN-D"]
    assert "[ME/062] Material NOPE is not maintained in plant 1010" in outcome.rejected["PLN-B"]
    assert "needs supplier_id" in outcome.rejected["PLN-C"]
    assert "does not cancel" in outcome.rejected["PLN-E"]
    assert "CorrespncExternalReference has invalid value 'PLN-0000000042'" in outcome.rejected["PLN-0000000042"]
    assert len(purchase_orders_for(sap, "PLN-A")) == 1 and purchase_orders_for(sap, "PLN-D") == []


def test_creation_whose_answer_was_lost_is_found_again_not_duplicated(runtime: Runtime, sap: httpx.Client) -> None:
    orders = [planned(f"PLN-9{index}") for index in range(3)]
    with runtime.store.transaction() as tx:
        tx.apply("planned_order", [IncomingRecord(o.key, msgspec.json.encode(o.payload)) for o in orders])
    # SAP commits the second purchase order but the answer is lost (503): the flow retries the whole write
    sap.post("/_sandbox/lose_create_answers", params={"count": 1}).raise_for_status()
    sap.post("/_sandbox/faults", json={"fail_next_n": 1, "fail_status": 429, "retry_after": 0}).raise_for_status()
    result = runtime.run_flow("planned-orders-out")
    assert result.records_out == 3 and result.quarantined == 0
    numbers = set()
    for order in orders:
        found = purchase_orders_for(sap, order.key)
        assert len(found) == 1
        numbers.add(found[0]["PurchaseOrder"])
        assert runtime.store.xref("s4", "planned_order", found[0]["PurchaseOrder"]) == order.key
    assert len(numbers) == 3


def test_planned_order_sap_refuses_is_dead_lettered_with_sap_message(runtime: Runtime, sap: httpx.Client) -> None:
    order = planned("PLN-BAD", item="RM9999")
    with runtime.store.transaction() as tx:
        tx.apply("planned_order", [IncomingRecord(order.key, msgspec.json.encode(order.payload))])
    result = runtime.run_flow("planned-orders-out")
    assert (result.records_out, result.dead_lettered) == (0, 1)
    [entry] = runtime.store.dead_letters(flow="planned-orders-out")
    assert (entry.system, entry.entity, entry.record_key) == ("s4", "planned_order", "PLN-BAD")
    assert "[ME/062] Material RM9999 is not maintained in plant 1010" in entry.reason
    assert purchase_orders_for(sap, "PLN-BAD") == []


def test_a_new_user_syncs_the_example_estate_from_the_command_line(runtime: Runtime, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from syncfabric.cli import app

    result = CliRunner().invoke(app, ["sync", "--all", "--estate", str(tmp_path / "estate.yaml")], env=SAP_ENV)
    assert result.exit_code == 0, result.output
    assert "items-in" in result.output and "purchase-orders-in" in result.output
    assert runtime.store.count("item") == 40 and runtime.store.count("purchase_order") == 12


def made(order_id: str, *, quantity: str = "40", item: str = "FG1004", plant: str = "1010") -> OutboundRecord:
    record = PlannedOrder(planned_order_id=order_id, order_type="make", item_id=item, location_id=plant,
                          quantity=Quantity(value=Decimal(quantity), unit="PC"), start_date=dt.date(2026, 11, 16),
                          due_date=dt.date(2026, 11, 20), status="approved")
    return OutboundRecord(record.key, 1, msgspec.to_builtins(record))


def test_make_orders_become_sap_planned_orders_once_each(base_url: str, sap: httpx.Client) -> None:
    with sap_connector(base_url, planned_orders={"planned_order_type": "LA"}) as connector:
        first = connector.write("planned_order", [made("PLN-M1"), made("PLN-M2", quantity="55"),
                                                  made("PLN-M3", item="NOPE"), planned("PLN-B1")])
        assert sorted(first.accepted) == ["PLN-B1", "PLN-M1", "PLN-M2"]
        assert "Material NOPE is not maintained in plant 1010" in first.rejected["PLN-M3"]
        rows = odata_rows(sap, "API_PRODUCTION_ORDER_2_SRV/A_PlannedOrder")
        assert sorted((row["PlannedOrder"], row["TotalQuantity"], row["MRPPlant"], row["PlannedOrderType"],
                       plain(row["PlndOrderPlannedEndDate"])) for row in rows) == sorted(
            (first.links[key], quantity, "1010", "LA", "2026-11-20") for key, quantity in
            (("PLN-M1", "40"), ("PLN-M2", "55")))
        # sent again: once with the link the cross-reference holds, once without (a crash before it was kept)
        linked = OutboundRecord("PLN-M1", 1, made("PLN-M1").payload, external_id=first.links["PLN-M1"])
        again = connector.write("planned_order", [linked, made("PLN-M2", quantity="55")])
    assert again.links == {"PLN-M1": first.links["PLN-M1"], "PLN-M2": first.links["PLN-M2"]}
    assert len(odata_rows(sap, "API_PRODUCTION_ORDER_2_SRV/A_PlannedOrder")) == 2
