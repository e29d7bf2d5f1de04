"""The SAP OData connector passes the connector contract kit, against the S/4HANA emulator."""

from __future__ import annotations

import httpx
import pytest
from tests.connectors.test_odata import change_product, planned, purchase_orders_for
from tests.fixtures import SAP_PASSWORD, sap_connector, sap_emulator

from syncfabric.connectors.base import Connector, OutboundRecord, RawRecord
from syncfabric.connectors.odata.connector import ODataConnector
from syncfabric.testing.connector_kit import ConnectorContract

base_url = sap_emulator()


class TestODataContract(ConnectorContract):
    full_entity = "products"
    changes_entity = "products"
    write_entity = "planned_order"

    @pytest.fixture(autouse=True)
    def _system(self, base_url: str, sap: httpx.Client) -> None:
        self.base_url, self.sap = base_url, sap

    def _connector(self, password: str) -> ODataConnector:
        return sap_connector(self.base_url, max_attempts=2, password=password)

    def make_connector(self) -> Connector:
        return self._connector(SAP_PASSWORD)

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

