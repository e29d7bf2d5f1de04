"""The SAP S/4HANA OData v2 emulator, over real HTTP: paging, query options, CSRF, auth, errors and faults."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

import httpx
import pytest

from syncfabric.sandbox.sap_odata import ROOT, create_app
from syncfabric.sandbox.server import serve

USERS = {"INTEGRATION": "s3cret"}


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve(create_app(USERS, page_size=10)) as url:
        yield url


@pytest.fixture
def sap(base_url: str) -> Iterator[httpx.Client]:
    httpx.post(f"{base_url}/_sandbox/reset").raise_for_status()
    with httpx.Client(base_url=base_url + ROOT, auth=("INTEGRATION", "s3cret"),
                      headers={"Accept": "application/json"}) as client:
        yield client


def results(client: httpx.Client, path: str, **params: str) -> list[dict]:
    """Every row, following ``__next`` links."""
    rows, url, query = [], path, params
    while url:
        response = client.get(url, params=query)
        assert response.status_code == 200, response.text
        rows += response.json()["d"]["results"]
        url, query = response.json()["d"].get("__next"), None
    return rows


def test_server_driven_paging_follows_next_links_to_every_row_once(sap: httpx.Client) -> None:
    url: str | None = "/API_PRODUCT_SRV/A_Product?$select=Product&$inlinecount=allpages"
    seen, pages = [], 0
    while url:
        body = sap.get(url).json()["d"]
        assert body["__count"] == "40"
        seen += [row["Product"] for row in body["results"]]
        url, pages = body.get("__next"), pages + 1
    assert pages == 4 and len(seen) == 40 == len(set(seen)) and seen == sorted(seen)


def test_top_and_skip_bound_the_paged_result(sap: httpx.Client) -> None:
    first = sap.get("/API_PRODUCT_SRV/A_Product", params={"$top": "15", "$skip": "3", "$select": "Product"})
    body = first.json()["d"]
    assert len(body["results"]) == 10 and "$skiptoken=13" in body["__next"]
    rest = sap.get(body["__next"]).json()["d"]
    assert len(rest["results"]) == 5 and "__next" not in rest
    everything = [row["Product"] for row in results(sap, "/API_PRODUCT_SRV/A_Product")]
    assert [row["Product"] for row in body["results"] + rest["results"]] == everything[3:18]


@pytest.mark.parametrize(("expression", "check"), [
    ("ProductType eq 'FERT'", lambda r: r["ProductType"] == "FERT"),
    ("ProductType ne 'FERT' and BaseUnit eq 'PC'", lambda r: r["ProductType"] != "FERT" and r["BaseUnit"] == "PC"),
    ("Product eq 'FG1004' or Product eq 'RM1001'", lambda r: r["Product"] in ("FG1004", "RM1001")),
    ("GrossWeight gt 20 and GrossWeight le 30.5", lambda r: 20 < float(r["GrossWeight"]) <= 30.5),
    ("GrossWeight lt 5M or GrossWeight ge 49", lambda r: float(r["GrossWeight"]) < 5 or float(r["GrossWeight"]) >= 49),
    ("LastChangeDateTime gt datetimeoffset'2026-10-01T08:00:00Z'",
     lambda r: int(r["LastChangeDateTime"][6:-7]) > 1790841600000),
    ("CreationDate lt datetime'2026-06-01T00:00:00' and not (ProductType eq 'ROH')",
     lambda r: r["ProductType"] != "ROH"),
    ("startswith(Product,'FG1')", lambda r: r["Product"].startswith("FG1")),
])
def test_filter_expressions_select_exactly_the_matching_rows(sap: httpx.Client, expression: str, check) -> None:
    everything = results(sap, "/API_PRODUCT_SRV/A_Product")
    assert len(everything) == 40
    rows = results(sap, "/API_PRODUCT_SRV/A_Product", **{"$filter": expression})
    expected = sorted({r["Product"] for r in everything if check(r)})
    assert sorted(r["Product"] for r in rows) == expected
    assert 0 < len(expected) < 40


def test_select_and_nested_expand(sap: httpx.Client) -> None:
    row = sap.get("/API_PRODUCT_SRV/A_Product('FG1004')", params={
        "$select": "Product,BaseUnit,to_Plant", "$expand": "to_Plant/to_ProductSupplyPlanning"}).json()["d"]
    assert set(row) == {"__metadata", "Product", "BaseUnit", "to_Plant"}
    plants = row["to_Plant"]["results"]
    assert plants and all(p["to_ProductSupplyPlanning"]["Plant"] == p["Plant"] for p in plants)
    assert row["__metadata"]["type"] == "API_PRODUCT_SRV.A_ProductType"


def test_metadata_lists_the_published_entity_types(sap: httpx.Client) -> None:
    for service, types in {"API_PRODUCT_SRV": {"A_ProductType", "A_ProductPlantType"},
                           "API_MATERIAL_STOCK_SRV": {"A_MatlStkInAcctModType"},
                           "API_PURCHASEORDER_PROCESS_SRV": {"A_PurchaseOrderType", "A_PurchaseOrderItemType"},
                           "API_PRODUCTION_ORDER_2_SRV": {"A_ProductionOrder_2Type"},
                           "API_BUSINESS_PARTNER": {"A_BusinessPartnerType", "A_SupplierType"}}.items():
        document = ET.fromstring(sap.get(f"/{service}/$metadata").content)
        names = {node.get("Name") for node in document.iter("{http://schemas.microsoft.com/ado/2008/09/edm}EntityType")}
        assert types <= names


def test_errors_are_odata_error_bodies(sap: httpx.Client) -> None:
    response = sap.get("/API_PRODUCT_SRV/A_Product", params={"$filter": "Product eq 12"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"]["lang"] == "en" and "does not fit type Edm.String" in error["message"]["value"]
    assert sap.get("/API_PRODUCT_SRV/A_Product('NOPE')").status_code == 404
    assert sap.get("/API_PRODUCT_SRV/A_Product", headers={"Accept": "application/xml"}).status_code == 406


def test_basic_auth_is_required(base_url: str, sap: httpx.Client) -> None:
    response = httpx.get(f"{base_url}{ROOT}/API_PRODUCT_SRV/A_Product", auth=("INTEGRATION", "wrong"))
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Basic")
    assert "Logon failed" in response.json()["error"]["message"]["value"]


def test_writes_need_the_session_csrf_token(base_url: str, sap: httpx.Client) -> None:
    refused = sap.patch("/API_PRODUCT_SRV/A_Product('FG1004')", json={"GrossWeight": "1.5"})
    assert refused.status_code == 403 and refused.text == "CSRF token validation failed"
    assert refused.headers["x-csrf-token"] == "Required"
    token = sap.get("/API_PRODUCT_SRV/", headers={"x-csrf-token": "fetch"}).headers["x-csrf-token"]
    assert sap.patch("/API_PRODUCT_SRV/A_Product('FG1004')", json={"GrossWeight": "1.5"},
                     headers={"x-csrf-token": token}).status_code == 204
    httpx.post(f"{base_url}/_sandbox/csrf/expire").raise_for_status()
    assert sap.patch("/API_PRODUCT_SRV/A_Product('FG1004')", json={"GrossWeight": "2"},
                     headers={"x-csrf-token": token}).status_code == 403
    changed = sap.get("/API_PRODUCT_SRV/A_Product", params={
        "$filter": "LastChangeDateTime gt datetimeoffset'2026-10-30T00:00:00Z'"}).json()["d"]["results"]
    assert [(row["Product"], row["GrossWeight"]) for row in changed] == [("FG1004", "1.5")]


def test_deep_insert_creates_a_purchase_order_with_items_and_schedule_lines(sap: httpx.Client) -> None:
    token = sap.get("/API_PURCHASEORDER_PROCESS_SRV/", headers={"x-csrf-token": "fetch"}).headers["x-csrf-token"]
    body = {"Supplier": "17300001", "CompanyCode": "1010", "PurchasingOrganization": "1010",
            "PurchasingGroup": "001", "CorrespncExternalReference": "PLN-7",
            "to_PurchaseOrderItem": [{"Material": "RM1001", "Plant": "1010", "OrderQuantity": "120",
                                      "to_ScheduleLine": [{"ScheduleLineDeliveryDate": "/Date(1796083200000)/"}]}]}
    created = sap.post("/API_PURCHASEORDER_PROCESS_SRV/A_PurchaseOrder", json=body, headers={"x-csrf-token": token})
    assert created.status_code == 201, created.text
    number = created.json()["d"]["PurchaseOrder"]
    found = results(sap, "/API_PURCHASEORDER_PROCESS_SRV/A_PurchaseOrder", **{
        "$filter": "CorrespncExternalReference eq 'PLN-7'", "$expand": "to_PurchaseOrderItem/to_ScheduleLine"})
    assert [row["PurchaseOrder"] for row in found] == [number]
    item = found[0]["to_PurchaseOrderItem"]["results"][0]
    assert item["OrderQuantity"] == "120" and item["to_ScheduleLine"]["results"][0]["ScheduleLineDeliveryDate"] \
        == "/Date(1796083200000)/"
    bad = sap.post("/API_PURCHASEORDER_PROCESS_SRV/A_PurchaseOrder", headers={"x-csrf-token": token},
                   json={**body, "Supplier": "99999999"})
    assert bad.status_code == 400 and bad.json()["error"]["message"]["value"] == "Supplier 99999999 does not exist"


def test_throttling_fault_answers_429_with_retry_after(base_url: str, sap: httpx.Client) -> None:
    httpx.post(f"{base_url}/_sandbox/faults", json={"fail_next_n": 1, "fail_status": 429, "retry_after": 2})
    throttled = sap.get("/API_PRODUCT_SRV/A_Product")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"
    assert sap.get("/API_PRODUCT_SRV/A_Product").status_code == 200
