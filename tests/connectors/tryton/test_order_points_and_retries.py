"""Order points read as item locations; calls the server refused (429, 503) tried again, and reads after any
transient failure, but never a write that may have run; a session kept for the next connector when asked."""

from __future__ import annotations

import pytest
from tests.connectors.tryton.conftest import connector_for

from syncfabric.connectors.tryton.configuration import TrytonConfig
from syncfabric.connectors.tryton.connector import TrytonConnector
from syncfabric.errors import TransientError
from syncfabric.sandbox.faults import Faults
from syncfabric.sandbox.global_tryton import proxy_app
from syncfabric.sandbox.server import serve

pytestmark = pytest.mark.tryton


def test_order_points_are_item_locations_of_their_warehouse(tryton_connector, tryton_seed) -> None:
    seed = tryton_seed
    bolt = seed.item("BOLT")
    frame = seed.item("FRAME", producible=True, purchasable=False)
    warehouse, storage, entry = (seed.location(code)["id"] for code in ("WH", "STO", "IN"))
    seed.x("stock.order_point", "create", [
        {"product": bolt["id"], "type": "purchase", "location": warehouse, "min_quantity": 40.0,
         "target_quantity": 100.0, "company": seed.company},
        {"product": frame["id"], "type": "internal", "location": storage, "provisioning_location": entry,
         "min_quantity": 5.0, "target_quantity": 10.0, "company": seed.company}])
    records = [record.data for page in tryton_connector.read_full("item_location") for record in page.records
               if record.data["product"]["code"].startswith(seed.prefix)]
    found = {r["product"]["code"]: (r["warehouse"]["code"], r["min_quantity"], r["product"]["template"]["producible"],
                                    r["type"]) for r in records}
    assert found == {bolt["code"]: ("WH", 40.0, False, "purchase"), frame["code"]: ("WH", 5.0, True, "internal")}


@pytest.fixture
def throttled(tryton_server, tryton_seed):
    """The test server behind a proxy whose fault knobs the test turns."""
    faults = Faults()
    with serve(proxy_app(tryton_server.url, faults)) as url:
        yield url, faults


def test_refused_calls_and_failed_reads_are_tried_again_but_not_a_write_that_may_have_run(tryton_server,
                                                                                         throttled) -> None:
    url, faults = throttled
    config = TrytonConfig(url=url, database=tryton_server.database, user=tryton_server.user,
                          max_retry_delay_seconds=0.01)
    with TrytonConnector("erp-tryton", config, {"password": tryton_server.password}) as connector:
        client = connector.client
        faults.update(fail_next_n=2, fail_status=429)
        assert client.execute("product.uom", "search", [["symbol", "=", "kg"]], 0, 1, None)  # 2 x 429, then done
        faults.update(fail_next_n=1, fail_status=502)
        assert client.execute("product.uom", "search", [["symbol", "=", "u"]], 0, 1, None)  # a read: again
        assert faults.injected == 3
        faults.update(fail_next_n=1, fail_status=502)
        with pytest.raises(TransientError, match="502"):  # a write that failed that way may have run: the flow
            client.execute("party.party", "create", [{"name": "Not twice"}])  # decides, with what it finds
        faults.update(fail_next_n=1, fail_status=503)
        assert client.execute("party.party", "create", [{"name": "Refused once"}])  # refused: sent again
        assert faults.injected == 5
        assert len(client.execute("party.party", "search", [["name", "=", "Refused once"]], 0, None, None)) == 1


def test_a_kept_session_serves_the_next_connector_without_a_login(tryton_server, tryton_seed) -> None:
    with connector_for(tryton_server, reuse_session=True) as first:
        first.client.execute("product.uom", "search", [], 0, 1, None)
        assert first.client.logins == 1
    with connector_for(tryton_server, reuse_session=True) as second:
        assert second.client.execute("product.uom", "search", [], 0, 1, None)
        assert second.client.logins == 0 and second.client.context.get("company")
    with connector_for(tryton_server) as plain:  # without the option: its own session
        plain.client.execute("product.uom", "search", [], 0, 1, None)
        assert plain.client.logins == 1
