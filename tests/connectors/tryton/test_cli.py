"""As a new user would: the example estate pointed at a running Tryton, synced from the command line."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal

import msgspec
import pytest
from tests.connectors.tryton.conftest import ESTATE, estate_environ
from typer.testing import CliRunner

from syncfabric.config import load_estate
from syncfabric.model import Quantity
from syncfabric.model.planning import PlannedOrder
from syncfabric.store import IncomingRecord, Lineage, open_store

pytestmark = pytest.mark.tryton
runner = CliRunner()


def test_sync_the_example_estate_change_a_product_and_send_a_planned_order_back(
        tryton_server, tryton_seed, tmp_path, monkeypatch) -> None:
    from syncfabric.cli import app

    seed = tryton_seed
    gear = seed.item("GEAR", unit="u")
    mill = seed.supplier("Gearworks")
    seed.product_supplier(gear, mill, lead_days=3, price="7.5")
    seed.receive(gear, 25)
    seed.purchase(mill, [(gear, 40, "7.5")])
    estate = tmp_path / "estate.yaml"
    shutil.copy(ESTATE, estate)
    environ = estate_environ(tryton_server, tmp_path / "store.db")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SYNCFABRIC_ESTATE", str(estate))

    synced = runner.invoke(app, ["sync", "--all"])
    assert synced.exit_code == 0, synced.output
    assert "items-in" in synced.output and "inventory-in" in synced.output
    assert tryton_server.password not in synced.output

    seed.x("product.template", "write", [gear["template"]], {"name": "Spur gear"})
    again = runner.invoke(app, ["sync", "items-in"])
    assert again.exit_code == 0, again.output
    row = next(line for line in again.output.splitlines() if "items-in" in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[3:6] == ["0", "1", "0"], row  # inserted, updated, deleted

    store = open_store(load_estate(estate).store_url)
    try:
        order = PlannedOrder(planned_order_id=seed.code("PLN-1"), order_type="buy", item_id=gear["code"],
                             location_id="WH", supplier_id=mill["code"], quantity=Quantity(value=Decimal(60),
                                                                                           unit="EA"),
                             start_date=dt.date.today(), due_date=dt.date.today() + dt.timedelta(days=3),
                             status="approved")
        for version in (order, msgspec.structs.replace(order, firm=True)):  # planning sends it, then again
            with store.transaction() as tx:
                tx.apply("planned_order", [IncomingRecord(order.key, msgspec.json.encode(version),
                                                          Lineage("planning"))])
            sent = runner.invoke(app, ["sync", "planned-orders-out"])
            assert sent.exit_code == 0, sent.output
            assert len(seed.documents("purchase.purchase", order.key)) == 1
    finally:
        store.close()
