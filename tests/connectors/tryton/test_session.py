"""Sessions and errors against the real server: re-login on expiry, Tryton's errors and warnings translated."""

from __future__ import annotations

import datetime as dt
import socket
import time

import httpx
import pytest
from tests.connectors.tryton.conftest import connector_for

from syncfabric.connectors.limits import Limits
from syncfabric.connectors.tryton.configuration import TrytonConfig
from syncfabric.connectors.tryton.connector import TrytonConnector
from syncfabric.errors import PermanentError, TransientError

pytestmark = pytest.mark.tryton


def test_an_expired_session_is_renewed_once_and_the_call_goes_through(tryton_server, tryton_connector) -> None:
    client = tryton_connector.client
    client.execute("product.uom", "search", [], 0, 1, None)
    assert client.logins == 1
    # End the session on the server, as the idle timeout would: the next call meets 401 and logs in again.
    logout = {"id": 99, "method": "common.db.logout", "params": []}
    answer = httpx.post(f"{tryton_server.url}/{tryton_server.database}/rpc/", json=logout,
                        headers={"Authorization": client._authorization})
    assert answer.status_code == 200
    assert client.execute("product.uom", "search", [["symbol", "=", "kg"]], 0, 1, None)
    assert client.logins == 2
    assert client.context.get("company")  # the preferences were read again with the new session


def test_a_wrong_password_is_permanent_and_says_so(tryton_server) -> None:
    config = TrytonConfig(url=tryton_server.url, database=tryton_server.database, user=tryton_server.user)
    with TrytonConnector("erp-tryton", config, {"password": "not-the-password"}) as connector, \
            pytest.raises(PermanentError, match="refused the login") as caught:
        connector.test_connection()
    assert caught.value.system == "erp-tryton"


def test_a_user_error_becomes_permanent_with_trytons_message(tryton_connector) -> None:
    with pytest.raises(PermanentError, match='A value is required for field "Name"') as caught:
        tryton_connector.client.execute("product.template", "create", [{"type": "goods", "default_uom": 1}],
                                        entity="item", key="X-1")
    assert (caught.value.entity, caught.value.key) == ("item", "X-1")


def test_a_warning_is_refused_with_its_text_unless_warnings_are_accepted(tryton_server, tryton_seed) -> None:
    item = tryton_seed.item("WARN")
    move = {"product": item["id"], "quantity": 1.0, "unit": tryton_seed.unit("u"),
            "from_location": tryton_seed.location("SUP")["id"], "to_location": tryton_seed.location("STO")["id"],
            "company": tryton_seed.company, "currency": tryton_seed.currency(), "effective_date": dt.date.today()}
    for accept in (False, True):
        with connector_for(tryton_server, accept_warnings=accept) as connector:
            ids = connector.client.execute("stock.move", "create", [{**move, "unit_price": 1}])
            if not accept:
                with pytest.raises(PermanentError, match=r"Tryton warning .*have no origin.*accept_warnings"):
                    connector.client.execute("stock.move", "do", ids)
            else:
                connector.client.execute("stock.move", "do", ids)
                assert connector.client.execute("stock.move", "read", ids, ["state"])[0]["state"] == "done"


def test_an_unreachable_server_is_transient(tryton_server) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    config = TrytonConfig(url=f"http://127.0.0.1:{port}", database="syncfabric", timeout_seconds=2)
    with TrytonConnector("erp-tryton", config, {"password": "x"}) as connector, \
            pytest.raises(TransientError, match="Tryton unreachable"):
        connector.test_connection()


def test_an_unexpected_server_exception_is_permanent_and_carries_its_text(tryton_connector) -> None:
    with pytest.raises(PermanentError, match="Tryton server error: 'no_such_field'"):
        tryton_connector.client.execute("stock.location", "search_read", [], 0, 1, None, ["no_such_field"])


def test_the_systems_request_rate_limit_spaces_the_calls(tryton_server, tryton_seed) -> None:
    def five_calls(**settings) -> float:
        with connector_for(tryton_server, **settings) as connector:
            connector.client.login()
            started = time.monotonic()
            for _ in range(5):
                connector.client.execute("product.uom", "search", [], 0, 1, None)
            return time.monotonic() - started

    limited = five_calls(limits=Limits(requests_per_second=5, burst=1))
    assert limited >= 4 / 5 * 0.95  # one call per 200 ms after the first
    assert five_calls() < limited
