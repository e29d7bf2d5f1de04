"""Planned orders back into ERP Europe (REST, booked by reference) and the legacy ERP (an import file in its inbound
folder), through the example estate's write-back flows: each ERP writes its own plants' orders, once each however
often they are sent, and the exceptions wait for planner review until approved."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from syncfabric.config import load_estate
from syncfabric.flows.runtime import Runtime
from syncfabric.flows.write_back import REVIEW, approve, waiting
from syncfabric.model import Quantity
from syncfabric.model.planning import PlannedOrder
from syncfabric.observe import clock
from syncfabric.sandbox.erp_europe import create_erp_europe
from syncfabric.sandbox.global_demo import send_again
from syncfabric.sandbox.legacy_erp import LegacyErp
from syncfabric.sandbox.server import serve
from syncfabric.store import DeadLetterStatus, IncomingRecord, Lineage

EXAMPLE = Path(__file__).parents[2] / "examples" / "global-manufacturer" / "estate.yaml"
ITEMS = ["100200", "100300", "200100", "300100"]
TODAY = dt.datetime(2026, 11, 3, 18, 0, tzinfo=dt.UTC)


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Runtime, object, LegacyErp]]:
    shutil.copy(EXAMPLE, tmp_path / "estate.yaml")
    erp_apac = LegacyErp(tmp_path / "drop" / "erp-apac", seed=3, item_count=10, sourcing=True)
    app = create_erp_europe(ITEMS, ITEMS[:1], seed=3, token="eu-token")
    with serve(app) as url, clock.use_clock(lambda: TODAY):
        environ = {"ERP_EU_TOKEN": "eu-token", "PLANNING_TOKEN": "p", "S4_USER": "u", "S4_PASSWORD": "p",
                   "MES_WEBHOOK_SECRET": "m", "PARTNERS_WEBHOOK_SECRET": "p",
                   "SYNCFABRIC__SYSTEMS__ERP_EU__CONNECTION__BASE_URL": url}
        with Runtime(load_estate(tmp_path / "estate.yaml", environ=environ)) as runtime:
            assert runtime.run_flow("eu-items-in").records_in == len(ITEMS)  # the item cross-reference
            yield runtime, app.state.rest, erp_apac


def plan(runtime: Runtime, *orders: tuple[str, str, str, str, str, str | None]) -> None:
    """Planned orders as the platform proposes them: (id, type, item, location, quantity, supplier)."""
    records = []
    for order_id, kind, item, location, quantity, supplier in orders:
        order = PlannedOrder(planned_order_id=order_id, order_type=kind, item_id=item, location_id=location,
                             supplier_id=supplier, quantity=Quantity(value=Decimal(quantity), unit="EA"),
                             start_date=dt.date(2026, 11, 4), due_date=dt.date(2026, 11, 10))
        records.append(IncomingRecord(order.key, msgspec.json.encode(order), Lineage("planning")))
    with runtime.store.transaction() as tx:
        tx.apply("planned_order", records)


def test_erp_europe_books_its_orders_once_and_exceptions_wait_for_approval(estate) -> None:
    runtime, erp_eu, _ = estate
    plan(runtime, ("PL-EU-1", "buy", "100300", "DE-MUC", "40", "L-4712"), ("PL-EU-2", "make", "100200", "DE-MUC", "12",
                                                                          None),
         ("PL-EU-3", "buy", "200100", "DE-MUC", "900", None), ("PL-NA-1", "buy", "RM1001", "1710", "10", "17300002"))

    result = runtime.run_flow("eu-planned-orders-out")
    send_again(runtime, "eu-planned-orders-out")

    purchases, productions = erp_eu.collections["purchase-orders"], erp_eu.collections["production-orders"]
    assert [(row["REFERENCE"], row["MATNR"], row["WERKS"], row["MENGE"], row["MEINS"], row["LIFNR"])
            for row in purchases.values()] == [("PL-EU-1", "MAT-100-300", "1000", "40", "ST", "L-4712")]
    assert [(row["REFERENCE"], row["MATNR"], row["ENDE"]) for row in productions.values()] == [
        ("PL-EU-2", "MAT-100-200", "2026-11-10")]
    assert result.records_out == 2  # the North American order is not Europe's: neither written nor refused
    held = waiting(runtime.store, "eu-planned-orders-out")
    assert [(e.record_key, e.reason) for e in held] == [("PL-EU-3", f"{REVIEW}: quantity 900 EA above 150")]
    assert runtime.store.dead_letters(flow="eu-planned-orders-out", key="PL-NA-1", status=None) == []

    done = approve(runtime, "eu-planned-orders-out", ["PL-EU-3"], actor="alice")

    assert done.delivered == [("eu-planned-orders-out", "planned_order", "PL-EU-3")]
    booked = {row["REFERENCE"]: row for row in purchases.values()}
    assert booked["PL-EU-3"]["LIFNR"]  # no supplier in the plan: the material's own supplier in ERP Europe
    assert waiting(runtime.store) == []
    closed = runtime.store.dead_letters(flow="eu-planned-orders-out", key="PL-EU-3", status=DeadLetterStatus.REPLAYED)
    assert "(by alice)" in closed[0].attempts[-1].detail


def test_past_due_proposals_wait_with_the_date_named(estate) -> None:
    runtime, erp_eu, _ = estate
    order = PlannedOrder(planned_order_id="PL-LATE", order_type="buy", item_id="100300", location_id="DE-MUC",
                         supplier_id="L-4711", quantity=Quantity(value=Decimal(5), unit="EA"),
                         start_date=dt.date(2026, 10, 20), due_date=dt.date(2026, 11, 1))
    with runtime.store.transaction() as tx:
        tx.apply("planned_order", [IncomingRecord(order.key, msgspec.json.encode(order), Lineage("planning"))])
    runtime.run_flow("eu-planned-orders-out")
    assert [e.reason for e in waiting(runtime.store)] == [
        f"{REVIEW}: due date 2026-11-01 already past (today 2026-11-03)"]
    assert erp_eu.collections["purchase-orders"] == {}


def test_the_legacy_erp_books_an_import_file_sent_twice_once(estate) -> None:
    runtime, _, erp_apac = estate
    (item, site), source = next(iter(sorted(erp_apac.rows["sources"].items())))
    make = next(key for key, row in sorted(erp_apac.rows["item_locations"].items()) if row["PROCUREMENT"] == "make")
    plan(runtime, ("PL-AP-1", "buy", item, site, "30", source["VENDOR_NO"]), ("PL-AP-2", "make", *make, "8", None),
         ("PL-AP-3", "buy", "RM-99999", site, "5", source["VENDOR_NO"]))

    runtime.run_flow("apac-planned-orders-out")
    first = erp_apac.import_orders()
    send_again(runtime, "apac-planned-orders-out")
    second = erp_apac.import_orders()

    assert (first.booked, first.duplicates, second.booked, second.duplicates) == (2, 0, 0, 2)
    assert {ref: row["ORDER_NO"] for ref, row in erp_apac.orders.items()} == {"PL-AP-1": "PO-000001",
                                                                              "PL-AP-2": "WO-000001"}
    assert len(first.rejected) == 1 and f"item RM-99999 is not planned at site {site}" in first.rejected[0]
    inbound = erp_apac.folder / "inbound"
    assert sorted(p.suffix for p in (inbound / "processed").iterdir()) == [".csv", ".csv"]
    rejected = sorted((inbound / "rejected").iterdir())
    assert len(rejected) == 2 and all("RM-99999" in path.read_text() and "REASON" in path.read_text()
                                      for path in rejected)


def test_plan_review_and_approve_from_the_command_line(estate, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from syncfabric.cli import app

    runtime, erp_eu, _ = estate
    for name, value in runtime.loaded.environ.items():  # the CLI reads the environment the estate was loaded with
        monkeypatch.setenv(name, value)
    plan(runtime, ("PL-EU-9", "buy", "100300", "DE-MUC", "700", "L-4711"))
    runtime.run_flow("eu-planned-orders-out")
    estate_file = str(runtime.loaded.path)
    runner = CliRunner()

    listed = runner.invoke(app, ["plan", "review", "-e", estate_file], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    assert "PL-EU-9" in listed.output and "quantity 700 EA above 150" in listed.output

    refused = runner.invoke(app, ["plan", "approve", "PL-NOPE", "--flow", "eu-planned-orders-out", "-e", estate_file])
    assert refused.exit_code != 0 and "not waiting for review in eu-planned-orders-out: PL-NOPE" in refused.output

    approved = runner.invoke(app, ["plan", "approve", "--all", "--flow", "eu-planned-orders-out", "--by", "bob",
                                   "-e", estate_file])
    assert approved.exit_code == 0, approved.output
    assert "approved and written: 1" in approved.output
    assert [row["REFERENCE"] for row in erp_eu.collections["purchase-orders"].values()] == ["PL-EU-9"]
    assert waiting(runtime.store) == []


def test_orders_the_legacy_import_refuses_come_back_as_dead_letters_and_are_replayed_after_the_fix(
        estate, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from syncfabric.cli import app

    runtime, _, erp_apac = estate
    flow = "apac-planned-orders-out"
    (item, site), source = next(iter(sorted(erp_apac.rows["sources"].items())))
    vendor = source["VENDOR_NO"]
    plan(runtime, ("PL-AP-1", "buy", item, site, "30", vendor), ("PL-AP-3", "buy", "RM-99999", site, "5", vendor))
    erp_apac.block_vendor(vendor)  # a buyer blocks the vendor before the import runs
    runtime.run_flow(flow)
    send_again(runtime, flow)  # both files refuse both orders
    assert erp_apac.import_orders().booked == 0 and erp_apac.orders == {}

    again = runtime.run_flow(flow)  # the next run reads the import's answer
    assert again.dead_lettered == 2
    letters = {letter.record_key: letter for letter in runtime.store.dead_letters(flow=flow)}
    assert sorted(letters) == ["PL-AP-1", "PL-AP-3"]  # one each, although refused in two files
    assert re.fullmatch(rf"erp-apac refused it on import: orders_\w+\.csv:2 ORDER_REF PL-AP-1: vendor {vendor} is "
                        r"blocked for purchasing", letters["PL-AP-1"].reason), letters["PL-AP-1"].reason
    assert f"ORDER_REF PL-AP-3: item RM-99999 is not planned at site {site}" in letters["PL-AP-3"].reason
    assert letters["PL-AP-1"].version == 1 and msgspec.json.decode(letters["PL-AP-1"].payload)["supplier_id"] == vendor
    rejected = erp_apac.folder / "inbound" / "rejected"
    assert [path.name for path in rejected.glob("*.csv")] == [] and len(list((rejected / "archive").iterdir())) == 2
    assert runtime.run_flow(flow).dead_lettered == 0  # read once
    for path in (rejected / "archive").iterdir():  # a crash after the dead letters, before the files were archived
        path.rename(rejected / path.name)
    assert runtime.run_flow(flow).dead_lettered == 0 and list(rejected.glob("*.csv")) == []

    # the key is held: the plan's newer version of PL-AP-1 waits behind its dead letter
    plan(runtime, ("PL-AP-1", "buy", item, site, "40", vendor))
    assert runtime.run_flow(flow).dead_lettered == 1 and erp_apac.import_orders().booked == 0

    # the fix: the vendor is unblocked; the planner replays the flow's dead letters from the command line
    erp_apac.block_vendor(vendor, blocked=False)
    for name, value in runtime.loaded.environ.items():
        monkeypatch.setenv(name, value)
    replayed = CliRunner().invoke(app, ["replay", flow, "--dead-letters", "--key", "PL-AP-1", "--yes", "-e",
                                        str(runtime.loaded.path)], terminal_width=200)
    assert replayed.exit_code == 0, replayed.output
    booked = erp_apac.import_orders()
    assert booked.booked == 1 and erp_apac.orders["PL-AP-1"]["QTY"] == "40"  # its newest version
    assert all(letter.status is DeadLetterStatus.REPLAYED
               for letter in runtime.store.dead_letters(flow=flow, key="PL-AP-1", status=None))
    assert runtime.run_flow(flow).dead_lettered == 0
    assert [letter.record_key for letter in runtime.store.dead_letters(flow=flow)] == ["PL-AP-3"]
