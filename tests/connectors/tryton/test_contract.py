"""The Tryton connector passes the connector contract kit, against the real Tryton server."""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Iterator

import msgspec
import pytest
from tests.connectors.tryton.conftest import connector_for
from tests.connectors.tryton.seed import Seeder
from tests.connectors.tryton.test_write import planned

from syncfabric.connectors.base import Connector, OutboundRecord, RawRecord
from syncfabric.testing.connector_kit import ConnectorContract

pytestmark = pytest.mark.tryton
_orders = itertools.count(1)


@pytest.fixture(scope="module")
def seeded(tryton_server) -> Iterator[tuple[Seeder, dict]]:
    """Seeded once: the contract's tests only read, or write keys of their own."""
    seed = Seeder(tryton_server.url, tryton_server.database, tryton_server.user, tryton_server.password)
    steel = seed.item("STEEL", unit="kg")
    seed.item("COPPER", unit="kg")  # a second item, newer than the first: a net-change read is more than one
    seed.product_supplier(steel, seed.supplier("Steelworks"), lead_days=2, price="2")
    try:
        yield seed, steel
    finally:
        seed.close()


class TestTrytonContract(ConnectorContract):
    full_entity = "location"   # a handful of records: every cursor of a small-page read is resumed
    changes_entity = "item"    # items are created one by one, so their stamps differ
    write_entity = "planned_order"

    @pytest.fixture(autouse=True)
    def _system(self, tryton_server, seeded) -> None:
        self.server = tryton_server
        self.seed, self.steel = seeded

    def make_connector(self) -> Connector:
        # A hung server (break_system) is given up on after two calls that time out, not five.
        return connector_for(self.server, page_size=2, lookback_seconds=0, timeout_seconds=2, max_attempts=2,
                             max_retry_delay_seconds=0.2)

    def make_connector_with_bad_credentials(self) -> Connector:
        connector = connector_for(self.server)
        connector.secrets = {"password": "not-the-password"}
        return connector

    def record_id(self, entity: str, record: RawRecord) -> str:
        return record.location

    def change_one(self, entity: str) -> str:
        self.seed.x("product.template", "write", [self.steel["template"]], {"name": "Steel, cold rolled"})
        return f"product.product:{self.steel['id']}"

    def outbound_record(self) -> OutboundRecord:
        order = planned(self.seed.code(f"KIT-{next(_orders)}"), "buy", self.steel["code"], "20", "KG")
        return OutboundRecord(order.key, 1, msgspec.to_builtins(order))

    def effects_of(self, record: OutboundRecord) -> int:
        return len(self.seed.documents("purchase.purchase", record.key))

    def break_system(self) -> bool:
        os.kill(self.server.pid, signal.SIGSTOP)  # the server hangs: calls time out
        return True

    def repair_system(self) -> None:
        os.kill(self.server.pid, signal.SIGCONT)
