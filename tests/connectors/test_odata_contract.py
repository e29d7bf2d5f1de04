"""The SAP OData connector passes the connector contract kit, against the S/4HANA emulator."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import msgspec
import pytest
from tests.connectors.test_odata import EXAMPLE, PASSWORD, USER, change_product, planned, purchase_orders_for

from syncfabric.connectors.base import Connector, OutboundRecord, RawRecord
from syncfabric.connectors.odata.configuration import ODataConfig
from syncfabric.connectors.odata.connector import ODataConnector
from syncfabric.sandbox.sap_odata import create_app
from syncfabric.sandbox.server import serve
from syncfabric.testing.connector_kit import ConnectorContract


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    with serve(create_app({USER: PASSWORD}, page_size=15)) as url:
        yield url


class TestODataContract(ConnectorContract):
    full_entity = "products"
    changes_entity = "products"
    write_entity = "planned_order"

    @pytest.fixture(autouse=True)
    def _system(self, emulator: str) -> Iterator[None]:
        httpx.post(f"{emulator}/_sandbox/reset").raise_for_status()
        self.base_url = emulator
        with httpx.Client(base_url=emulator, auth=(USER, PASSWORD), headers={"Accept": "application/json"}) as sap:
            self.sap = sap
            yield

    def _connector(self, password: str) -> ODataConnector:
        connection = msgspec.yaml.decode(EXAMPLE.read_bytes())["systems"]["s4"]["connection"]
        connection.update(base_url=self.base_url, retry={"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.1})
        return ODataConnector("s4", msgspec.convert(connection, ODataConfig), {"user": USER, "password": password})

    def make_connector(self) -> Connector:
        return self._connector(PASSWORD)

    def make_connector_with_bad_credentials(self) -> Connector:
        return self._connector("not-the-password")

    def record_id(self, entity: str, record: RawRecord) -> str:
        return str(record.data["Product"])

    def change_one(self, entity: str) -> str:
        change_product(self.sap, "RM1013", NetWeight="3.25")
        return "RM1013"

    def outbound_record(self) -> OutboundRecord:
        return planned("PLN-KIT-1")

    def effects_of(self, record: OutboundRecord) -> int:
        return len(purchase_orders_for(self.sap, record.key))

    def break_system(self) -> bool:
        self.sap.post("/_sandbox/faults", json={"outage": True}).raise_for_status()
        return True

    def repair_system(self) -> None:
        self.sap.post("/_sandbox/faults", json={"outage": False}).raise_for_status()

