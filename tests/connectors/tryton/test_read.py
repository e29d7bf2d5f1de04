"""Reading a real Tryton into the canonical store through the example estate: full and net-change."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import msgspec
import pytest
from tests.connectors.tryton.conftest import connector_for

from syncfabric.connectors.base import Page
from syncfabric.errors import PermanentError

pytestmark = pytest.mark.tryton

MASTER_FLOWS = ["locations-in", "items-in", "suppliers-in", "item-suppliers-in", "boms-in", "routings-in"]
ORDER_FLOWS = ["purchase-orders-in", "production-orders-in", "inventory-in"]


def stored(runtime, entity: str, key: str) -> dict:
    row = runtime.store.get(entity, key)
    assert row is not None and not row.deleted, f"{entity} {key!r} is not in the store"
    return msgspec.json.decode(row.payload)


@pytest.fixture
def factory(tryton_seed):
    """A small plant: a widget made of 1.5 kg of steel bought from a steelworks, stock, a purchase, a production."""
    seed = tryton_seed
    widget = seed.item("WIDGET", producible=True, purchasable=False, price="40")
    steel = seed.item("STEEL", unit="kg", price="3")
    mill = seed.supplier("Steelworks")
    seed.product_supplier(steel, mill, lead_days=5, price="2.5")
    structure = seed.bom(widget, [(steel, 1.5, "kg")], steps=["Cut", "Weld"])
    seed.receive(steel, 100, unit="kg")
    seed.receive(widget, 4)
    purchase = seed.purchase(mill, [(steel, 50, "2.40")])
    production = seed.production(widget, 10, bom=structure["bom"])
    return {"widget": widget, "steel": steel, "mill": mill, "purchase": purchase, "production": production,
            "structure": structure}


def test_full_read_lands_items_structures_stock_and_open_orders_in_the_store(tryton_runtime, factory) -> None:
    runtime = tryton_runtime
    for flow in MASTER_FLOWS + ORDER_FLOWS:
        result = runtime.run_flow(flow)
        assert result.quarantined == 0, (flow, runtime.store.quarantine())
    widget, steel = factory["widget"]["code"], factory["steel"]["code"]

    item = stored(runtime, "item", widget)
    assert (item["base_unit"], item["item_type"], item["status"]) == ("EA", "finished", "active")
    assert stored(runtime, "item", steel)["base_unit"] == "KG"
    assert stored(runtime, "item", steel)["item_type"] == "raw"
    assert stored(runtime, "location", "STO")["parent_id"] == "WH"
    assert stored(runtime, "location", "WH")["kind"] == "warehouse"
    assert stored(runtime, "supplier", factory["mill"]["code"])["status"] == "active"

    source = stored(runtime, "item_supplier", f"{steel}|{factory['mill']['code']}|")
    assert Decimal(source["lead_time_days"]) == 5 and Decimal(source["unit_price"]) == Decimal("2.5")

    bom = stored(runtime, "bill_of_material", f"{widget}||BOM {widget}")
    assert [(line["component_id"], Decimal(line["quantity_per"]["value"]), line["quantity_per"]["unit"])
            for line in bom["lines"]] == [(steel, Decimal("1.5"), "KG")]
    routing = stored(runtime, "routing", f"{widget}|WH|Routing {widget}")
    assert [(op["sequence"], op["operation_id"]) for op in routing["operations"]] == [(10, "Cut"), (20, "Weld")]

    on_hand = stored(runtime, "inventory_balance", f"{steel}|STO|")["on_hand"]
    assert (Decimal(on_hand["value"]), on_hand["unit"]) == (Decimal(100), "KG")
    assert Decimal(stored(runtime, "inventory_balance", f"{widget}|STO|")["on_hand"]["value"]) == 4

    order = stored(runtime, "purchase_order", factory["purchase"]["number"])
    assert order["supplier_id"] == factory["mill"]["code"] and order["status"] == "confirmed"
    (line,) = order["lines"]
    assert (line["item_id"], Decimal(line["quantity"]["value"]), line["quantity"]["unit"]) == (steel, 50, "KG")
    assert Decimal(line["unit_price"]) == Decimal("2.40") and line["location_id"] == "WH"
    assert sum(Decimal(entry["quantity"]["value"]) for entry in line["schedule"]) == 50

    made = stored(runtime, "production_order", factory["production"]["number"])
    assert (made["item_id"], made["status"], Decimal(made["quantity"]["value"])) == (widget, "released", 10)
    assert made["due_date"] == (dt.date.today() + dt.timedelta(days=5)).isoformat()
    assert [(c["item_id"], Decimal(c["quantity"]["value"])) for c in made["components"]] == [(steel, 15)]

    lineage = runtime.store.changes(0, entities=["item"], limit=10_000)
    assert any(change.lineage.source_system == "erp-tryton" and change.lineage.source_id.startswith(
        "product.product:") for change in lineage)


def test_net_change_sees_exactly_the_changed_product_template_and_variant_edits(tryton_runtime, tryton_seed) -> None:
    runtime, seed = tryton_runtime, tryton_seed
    bolt, nut = seed.item("BOLT"), seed.item("NUT")
    runtime.run_flow("items-in")
    first = json.loads(runtime.store.checkpoint("items-in"))["cursor"]
    newest = max(row["last_modified_at"] for row in seed.x(
        "product.product", "search_read", [], 0, None, None, ["last_modified_at"], active_test=False))
    assert json.loads(first)["since"] >= newest  # the watermark is the server's own, read back

    seed.x("product.template", "write", [bolt["template"]], {"name": "Hex bolt M8"})  # the variant is untouched
    result = runtime.run_flow("items-in")
    assert (result.inserted, result.updated, result.deleted) == (0, 1, 0)
    changes = runtime.store.changes(runtime.store.head() - 1, entities=["item"])
    assert [change.key for change in changes] == [bolt["code"]]
    assert stored(runtime, "item", bolt["code"])["description"] == "Hex bolt M8"

    seed.x("product.product", "write", [nut["id"]], {"active": False})  # a variant edit: archived
    result = runtime.run_flow("items-in")
    assert (result.inserted, result.updated) == (0, 1)
    assert stored(runtime, "item", nut["code"])["status"] == "obsolete"
    assert stored(runtime, "item", bolt["code"])["description"] == "Hex bolt M8"

    assert runtime.run_flow("items-in").changed == 0


def test_pages_follow_ids_and_a_cursor_resumes_after_the_last_committed_page(tryton_server, tryton_seed) -> None:
    for name in ("P1", "P2", "P3", "P4", "P5"):
        tryton_seed.item(name)
    with connector_for(tryton_server, page_size=2) as connector:
        pages: list[Page] = list(connector.read_full("item"))
        ids = [int(record.location.split(":")[1]) for page in pages for record in page.records]
        assert ids == sorted(ids) and len(ids) == len(set(ids)) >= 5
        assert all(len(page.records) <= 2 for page in pages)
        assert [page.complete for page in pages] == [False] * (len(pages) - 1) + [True]
        # A net-change read that stopped after its second page goes on with the third, and no record twice.
        changes = list(connector.read_changes("item", None))
        resumed = list(connector.read_changes("item", changes[1].cursor))
        again = [r.location for page in resumed for r in page.records]
        assert again == [r.location for page in changes[2:] for r in page.records]
        assert json.loads(resumed[-1].cursor) == json.loads(changes[-1].cursor)


def test_an_unknown_source_and_a_changes_read_of_inventory_are_refused(tryton_connector) -> None:
    with pytest.raises(PermanentError, match="no Tryton source 'widgets'"):
        list(tryton_connector.read_full("widgets"))
    with pytest.raises(PermanentError, match="read in full only"):
        list(tryton_connector.read_changes("inventory_balance", None))


def test_a_change_behind_a_paging_read_is_read_by_the_next_run(tryton_server, tryton_seed) -> None:
    seed = tryton_seed
    items = [seed.item(f"C{n}") for n in range(5)]
    start = seed.x("product.product", "read", [items[0]["id"]], ["last_modified_at"])[0]["last_modified_at"]
    with connector_for(tryton_server, page_size=2, lookback_seconds=0) as connector:
        pages = connector.read_changes("item", json.dumps({"since": start}))
        first = next(pages)
        assert [r.data["code"] for r in first.records] == [items[0]["code"], items[1]["code"]]
        # While the read pages on, one product it has passed and one ahead of it change.
        seed.x("product.template", "write", [items[0]["template"]], {"name": "changed behind"})
        seed.x("product.template", "write", [items[4]["template"]], {"name": "changed ahead"})
        rest = list(pages)
        assert "changed ahead" in [r.data["template"]["name"] for page in rest for r in page.records]
        following = list(connector.read_changes("item", rest[-1].cursor))
    names = {r.data["code"]: r.data["template"]["name"] for page in following for r in page.records}
    assert names[items[0]["code"]] == "changed behind"


def test_inventory_is_rewritten_only_when_stock_moved(tryton_runtime, tryton_seed) -> None:
    runtime, seed = tryton_runtime, tryton_seed
    screw = seed.item("SCREW")
    seed.receive(screw, 30)
    runtime.run_flow("inventory-in")
    assert runtime.run_flow("inventory-in").changed == 0  # nothing moved: nothing written

    seed.receive(screw, 12, at="IN")
    result = runtime.run_flow("inventory-in")
    assert result.inserted == 1 and result.quarantined == 0  # the first stock at the input zone
    assert Decimal(stored(runtime, "inventory_balance", f"{screw['code']}|IN|")["on_hand"]["value"]) == 12
    balance = stored(runtime, "inventory_balance", f"{screw['code']}|STO|")
    assert Decimal(balance["on_hand"]["value"]) == 30
    newest = seed.x("stock.move", "search_read", [], 0, 1, [["last_modified_at", "DESC"]], ["last_modified_at"])
    assert dt.datetime.fromisoformat(balance["as_of"]) == dt.datetime.fromisoformat(newest[0]["last_modified_at"])


def test_a_watermark_set_by_hand_is_a_starting_point_that_never_moves_back(tryton_connector, tryton_seed) -> None:
    tryton_seed.item("HAND")
    everything = list(tryton_connector.read_changes("item", "2000-01-01T00:00:00Z"))
    assert sum(len(page.records) for page in everything) >= 1
    future = list(tryton_connector.read_changes("item", "2999-01-01T00:00:00Z"))
    assert sum(len(page.records) for page in future) == 0
    assert json.loads(future[-1].cursor) == {"since": "2999-01-01T00:00:00Z"}
