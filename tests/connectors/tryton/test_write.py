"""Planned orders written back to a real Tryton: one document per planned order, however often it is sent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec
import pytest
from tests.connectors.tryton.conftest import connector_for

from syncfabric.connectors.base import OutboundRecord
from syncfabric.flows.deadletters import plan, replay_keys
from syncfabric.model import Quantity
from syncfabric.model.planning import PlannedOrder
from syncfabric.store import IncomingRecord, Lineage

pytestmark = pytest.mark.tryton

FLOW = "planned-orders-out"
TODAY = dt.date.today()


def planned(key: str, order_type: str, item: str, quantity: str, unit: str, *, supplier: str | None = None,
            status: str = "approved", start: int = 2, due: int = 9) -> PlannedOrder:
    return PlannedOrder(planned_order_id=key, order_type=order_type, item_id=item, location_id="WH",
                        supplier_id=supplier, quantity=Quantity(value=Decimal(quantity), unit=unit),
                        start_date=TODAY + dt.timedelta(days=start), due_date=TODAY + dt.timedelta(days=due),
                        status=status)


def put(runtime, *orders: PlannedOrder) -> None:
    with runtime.store.transaction() as tx:
        tx.apply("planned_order", [IncomingRecord(order.key, msgspec.json.encode(order), Lineage("planning"))
                                   for order in orders])


def resend_everything(runtime) -> None:
    """As after a crash before the checkpoint moved: the flow sends its changes again."""
    with runtime.store.transaction() as tx:
        tx.set_checkpoint(FLOW, "0")


def outbound(order: PlannedOrder, version: int = 1) -> OutboundRecord:
    return OutboundRecord(order.key, version, msgspec.to_builtins(order))


@pytest.fixture
def goods(tryton_seed):
    seed = tryton_seed
    steel = seed.item("STEEL", unit="kg", price="3")
    widget = seed.item("WIDGET", producible=True, purchasable=False)
    mill = seed.supplier("Steelworks")
    seed.product_supplier(steel, mill, lead_days=5, price="2.5")
    seed.bom(widget, [(steel, 1.5, "kg")], steps=["Cut"])
    return {"steel": steel, "widget": widget, "mill": mill}


def test_a_buy_order_becomes_one_draft_purchase_and_sending_it_again_makes_no_second(
        tryton_runtime, tryton_seed, goods) -> None:
    runtime, seed = tryton_runtime, tryton_seed
    order = planned(seed.code("PO-1"), "buy", goods["steel"]["code"], "120", "KG", supplier=goods["mill"]["code"])
    put(runtime, order)
    result = runtime.run_flow(FLOW)
    assert (result.records_out, result.quarantined) == (1, 0)
    (purchase,) = seed.documents("purchase.purchase", order.key)
    assert purchase["state"] == "draft" and purchase["party"] == goods["mill"]["id"]
    assert purchase["delivery_date"] == order.due_date.isoformat()
    (line,) = purchase["lines."]
    assert (line["quantity"], line["unit."]["symbol"], line["product"]) == (120.0, "kg", goods["steel"]["id"])
    assert Decimal(line["unit_price"]) == Decimal("2.5")  # Tryton's own price for this supplier
    assert runtime.store.xref_external("erp-tryton", "planned_order", order.key) == \
        f"purchase.purchase,{purchase['id']}"

    resend_everything(runtime)
    assert runtime.run_flow(FLOW).records_out == 1
    assert [doc["id"] for doc in seed.documents("purchase.purchase", order.key)] == [purchase["id"]]


def test_a_document_created_before_a_crash_is_found_by_its_reference(tryton_server, tryton_seed, goods) -> None:
    order = planned(tryton_seed.code("PO-2"), "buy", goods["steel"]["code"], "10", "KG")  # supplier from Tryton
    with connector_for(tryton_server) as connector:
        first = connector.write("planned_order", [outbound(order)])
        # The store never learnt the link (a crash before its commit): the same planned order comes again.
        second = connector.write("planned_order", [outbound(order)])
    assert first.accepted == second.accepted == [order.key]
    assert first.links == second.links
    (purchase,) = tryton_seed.documents("purchase.purchase", order.key)
    assert first.links[order.key] == f"purchase.purchase,{purchase['id']}"
    assert purchase["party"] == goods["mill"]["id"]


def test_a_new_version_of_the_planned_order_updates_its_draft(tryton_runtime, tryton_seed, goods) -> None:
    runtime, seed = tryton_runtime, tryton_seed
    order = planned(seed.code("PO-3"), "buy", goods["steel"]["code"], "40", "KG", supplier=goods["mill"]["code"])
    put(runtime, order)
    runtime.run_flow(FLOW)
    put(runtime, msgspec.structs.replace(order, quantity=Quantity(value=Decimal(55), unit="KG"),
                                         due_date=TODAY + dt.timedelta(days=12)))
    runtime.run_flow(FLOW)
    (purchase,) = seed.documents("purchase.purchase", order.key)
    assert purchase["lines."][0]["quantity"] == 55.0
    assert purchase["delivery_date"] == (TODAY + dt.timedelta(days=12)).isoformat()


def test_a_make_order_becomes_one_production_with_the_moves_of_its_bom(tryton_runtime, tryton_seed, goods) -> None:
    runtime, seed = tryton_runtime, tryton_seed
    order = planned(seed.code("MO-1"), "make", goods["widget"]["code"], "8", "EA", start=3, due=6)
    put(runtime, order)
    assert runtime.run_flow(FLOW).records_out == 1
    resend_everything(runtime)
    runtime.run_flow(FLOW)
    (production,) = seed.documents("production", order.key)
    assert (production["state"], production["product"], production["quantity"]) == ("draft", goods["widget"]["id"],
                                                                                    8.0)
    assert (production["planned_start_date"], production["planned_date"]) == (
        order.start_date.isoformat(), order.due_date.isoformat())
    assert [(move["product"], move["quantity"]) for move in production["inputs."]] == [(goods["steel"]["id"], 12.0)]
    assert [move["quantity"] for move in production["outputs."]] == [8.0]
    assert production["routing"]
    assert runtime.store.xref_external("erp-tryton", "planned_order", order.key) == f"production,{production['id']}"


def test_a_tryton_user_error_dead_letters_the_planned_order_with_its_message_until_replayed_after_a_fix(
        tryton_runtime, tryton_seed, goods) -> None:
    runtime, seed = tryton_runtime, tryton_seed
    good = planned(seed.code("PO-OK"), "buy", goods["steel"]["code"], "5", "KG", supplier=goods["mill"]["code"])
    # The widget is not purchasable: Tryton refuses a purchase line for it.
    bad = planned(seed.code("PO-BAD"), "buy", goods["widget"]["code"], "5", "EA", supplier=goods["mill"]["code"])
    put(runtime, good, bad)
    result = runtime.run_flow(FLOW)
    assert (result.records_out, result.dead_lettered) == (1, 1)
    (letter,) = runtime.store.dead_letters(flow=FLOW)
    assert letter.record_key == bad.key and letter.system == "erp-tryton"
    assert "Tryton: " in letter.reason and "not valid according to its domain" in letter.reason
    assert msgspec.json.decode(letter.payload)["item_id"] == goods["widget"]["code"]
    assert len(seed.documents("purchase.purchase", good.key)) == 1
    assert seed.documents("purchase.purchase", bad.key) == []

    # Fixed in Tryton (the widget may be bought now), the planned order is replayed: one purchase, once.
    seed.x("product.template", "write", [goods["widget"]["template"]],
           {"purchasable": True, "purchase_uom": seed.unit("u")})
    with runtime.connector("erp-tryton") as connector:
        for _ in range(2):
            replay_keys(runtime.store, connector, plan(runtime.store, runtime.store.dead_letters(flow=FLOW)))
    assert runtime.store.dead_letters(flow=FLOW) == []
    (purchase,) = seed.documents("purchase.purchase", bad.key)
    # The replay keeps the purchase's id in the xref, as delivery does: the next change of the order updates it.
    assert runtime.store.xref_external("erp-tryton", "planned_order", bad.key) == \
        f"purchase.purchase,{purchase['id']}"


def test_only_approved_orders_are_sent_and_quotation_runs_the_quote_button(
        tryton_server, tryton_seed, goods) -> None:
    proposed = planned(tryton_seed.code("PO-P"), "buy", goods["steel"]["code"], "5", "KG", status="proposed")
    quoted = planned(tryton_seed.code("PO-Q"), "buy", goods["steel"]["code"], "5", "KG")
    with connector_for(tryton_server, purchase_state="quotation") as connector:
        outcome = connector.write("planned_order", [outbound(proposed), outbound(quoted)])
    assert outcome.accepted == [proposed.key, quoted.key] and outcome.rejected == {}
    assert tryton_seed.documents("purchase.purchase", proposed.key) == []
    (purchase,) = tryton_seed.documents("purchase.purchase", quoted.key)
    assert purchase["state"] == "quotation"


def test_transfers_and_malformed_payloads_are_rejected_with_a_reason(tryton_connector, tryton_seed, goods) -> None:
    move = planned(tryton_seed.code("TR-1"), "buy", goods["steel"]["code"], "5", "KG")
    transfer = OutboundRecord("TR-1", 1, {**msgspec.to_builtins(move), "order_type": "transfer",
                                          "source_location_id": "OTHER"})
    broken = OutboundRecord("BR-1", 1, {"order_type": "buy", "status": "approved"})
    outcome = tryton_connector.write("planned_order", [transfer, broken])
    assert outcome.accepted == []
    assert "transfer planned orders are not written" in outcome.rejected["TR-1"]
    assert "KeyError" in outcome.rejected["BR-1"] and "item_id" in outcome.rejected["BR-1"]


def test_a_new_version_of_a_make_order_resizes_its_draft_production_and_its_moves(
        tryton_runtime, tryton_seed, goods) -> None:
    runtime, seed = tryton_runtime, tryton_seed
    order = planned(seed.code("MO-2"), "make", goods["widget"]["code"], "8", "EA")
    put(runtime, order)
    runtime.run_flow(FLOW)
    put(runtime, msgspec.structs.replace(order, quantity=Quantity(value=Decimal(4), unit="EA"),
                                         start_date=TODAY + dt.timedelta(days=4)))
    runtime.run_flow(FLOW)
    (production,) = seed.documents("production", order.key)
    assert production["quantity"] == 4.0
    assert production["planned_start_date"] == (TODAY + dt.timedelta(days=4)).isoformat()
    assert [move["quantity"] for move in production["inputs."]] == [6.0]
    assert [move["quantity"] for move in production["outputs."]] == [4.0]
