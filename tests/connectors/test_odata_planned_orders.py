"""Make planned orders written into the S/4HANA emulator as SAP planned orders (``A_PlannedOrder``) carrying our id
in a custom field: a write whose answer was lost, and a process killed between SAP's commit and the store's, are
sent again and find the planned order SAP made, even when the order changed meanwhile or SAP holds a lookalike."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import httpx
import msgspec
import pytest
from tests.fixtures import SAP_ENV, SAP_EXAMPLE, odata_rows, sap_connector, sap_emulator

from syncfabric.config import load_estate
from syncfabric.connectors.base import OutboundRecord
from syncfabric.connectors.odata.connector import ODataConnector
from syncfabric.connectors.odata.purchase_orders import sap_date
from syncfabric.errors import TransientError
from syncfabric.flows.runtime import Runtime
from syncfabric.model import Quantity
from syncfabric.model.planning import PlannedOrder
from syncfabric.sandbox.sap_odata import ROOT
from syncfabric.store import IncomingRecord

FIELD = "YY1_PlanningReference"
PLANNED = f"{ROOT}/API_PRODUCTION_ORDER_2_SRV/A_PlannedOrder"
SETTINGS = f"      planned_orders: {{planned_order_type: LA, reference_field: {FIELD}}}\n"

base_url = sap_emulator()


@pytest.fixture
def estate_file(base_url: str, sap: httpx.Client, tmp_path: Path) -> Path:
    """The SAP example estate, writing make planned orders as SAP planned orders that carry our id."""
    text = SAP_EXAMPLE.read_text().replace("http://127.0.0.1:8710", base_url)
    text = text.replace("      purchase_orders:\n", SETTINGS + "      purchase_orders:\n", 1)
    estate = tmp_path / "estate.yaml"
    estate.write_text(text)
    return estate


def made(order_id: str, *, quantity: str = "40", item: str = "FG1004", plant: str = "1010") -> OutboundRecord:
    record = PlannedOrder(planned_order_id=order_id, order_type="make", item_id=item, location_id=plant,
                          quantity=Quantity(value=Decimal(quantity), unit="PC"), start_date=dt.date(2026, 11, 16),
                          due_date=dt.date(2026, 11, 20), status="approved")
    return OutboundRecord(record.key, 1, msgspec.to_builtins(record))


def planned_orders(sap: httpx.Client) -> list[dict]:
    return odata_rows(sap, "API_PRODUCTION_ORDER_2_SRV/A_PlannedOrder")


def sap_user_creates(sap: httpx.Client, quantity: str) -> str:
    """A planned order an SAP user (or SAP's own MRP) made for FG1004 in 1010, without our id."""
    token = sap.get(f"{ROOT}/API_PRODUCTION_ORDER_2_SRV/", headers={"x-csrf-token": "fetch"}).headers["x-csrf-token"]
    response = sap.post(PLANNED, headers={"x-csrf-token": token}, json={
        "PlannedOrderType": "LA", "Material": "FG1004", "MRPPlant": "1010", "TotalQuantity": quantity,
        "PlndOrderPlannedStartDate": sap_date("2026-11-16"), "PlndOrderPlannedEndDate": sap_date("2026-11-20")})
    assert response.status_code == 201, response.text
    return response.json()["d"]["PlannedOrder"]


def connector_for(base_url: str) -> ODataConnector:
    return sap_connector(base_url, max_attempts=1,
                         planned_orders={"planned_order_type": "LA", "reference_field": FIELD})


def test_a_lost_answer_then_a_changed_order_finds_the_planned_order_by_reference(base_url: str,
                                                                               sap: httpx.Client) -> None:
    lookalike = sap_user_creates(sap, "40")  # what PLN-M1 asks for, made by someone else
    sap.post("/_sandbox/lose_create_answers", params={"count": 1}).raise_for_status()
    with connector_for(base_url) as connector:
        with pytest.raises(TransientError):  # SAP committed PLN-M1's planned order; the answer never came
            connector.write("planned_order", [made("PLN-M1")])
        # sent again, no link kept, and meanwhile the plan grew the order: found by its reference all the same
        again = connector.write("planned_order", [made("PLN-M1", quantity="55")])
    rows = {row["PlannedOrder"]: row for row in planned_orders(sap)}
    ours = [number for number, row in rows.items() if row[FIELD] == "PLN-M1"]
    assert again.accepted == ["PLN-M1"] and again.links == {"PLN-M1": ours[0]} and len(ours) == 1
    assert lookalike != ours[0] and rows[lookalike][FIELD] in (None, "")
    assert len(rows) == 2


def test_a_flow_killed_between_sap_and_the_store_creates_each_planned_order_once(estate_file: Path,
                                                                                sap: httpx.Client) -> None:
    orders = [made("PLN-K1"), made("PLN-K2", quantity="55"), made("PLN-K3", quantity="70")]
    with Runtime(load_estate(estate_file, environ=SAP_ENV)) as runtime, runtime.store.transaction() as tx:
        tx.apply("planned_order", [IncomingRecord(o.key, msgspec.json.encode(o.payload)) for o in orders])
    # a process that writes to SAP and is killed (SIGKILL) the moment SAP answered, before the store commits
    child = textwrap.dedent(f"""
        import os, signal
        from syncfabric.config import load_estate
        from syncfabric.connectors.odata.connector import ODataConnector
        from syncfabric.flows.runtime import Runtime

        write = ODataConnector.write
        def write_then_die(self, entity, records):
            write(self, entity, records)
            os.kill(os.getpid(), signal.SIGKILL)
        ODataConnector.write = write_then_die
        with Runtime(load_estate({str(estate_file)!r}, environ={SAP_ENV!r})) as runtime:
            runtime.run_flow("planned-orders-out")
        """)
    died = subprocess.run([sys.executable, "-c", child], cwd=estate_file.parent, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=120)
    assert died.returncode == -9, died.stderr
    created = {row[FIELD]: row["PlannedOrder"] for row in planned_orders(sap)}
    assert sorted(created) == ["PLN-K1", "PLN-K2", "PLN-K3"]
    with Runtime(load_estate(estate_file, environ=SAP_ENV)) as runtime:
        assert runtime.store.checkpoint("planned-orders-out") in (None, "", "0")  # the store never heard back
        assert runtime.store.xref_externals("s4", "planned_order", ["PLN-K1"]) == {}
        again = runtime.run_flow("planned-orders-out")
        assert (again.records_out, again.dead_lettered) == (3, 0)
        for key, number in created.items():
            assert runtime.store.xref("s4", "planned_order", number) == key
    assert sorted(row[FIELD] for row in planned_orders(sap)) == ["PLN-K1", "PLN-K2", "PLN-K3"]
