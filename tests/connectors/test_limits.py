"""Per-system request quotas and concurrency limits, measured where they matter: at the emulated SAP system,
which counts the requests it has in flight and when each started."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from syncfabric.connectors.limits import Limiter, Limits, limiter_for
from syncfabric.connectors.odata.configuration import ODataConfig
from syncfabric.connectors.odata.connector import ODataConnector
from syncfabric.sandbox.sap_odata import create_app
from syncfabric.sandbox.server import serve

USER, PASSWORD = "INTEGRATION", "pw"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve(create_app({USER: PASSWORD}, page_size=10)) as url:
        yield url


def sync_in_parallel(base_url: str, system: str, limits: dict | None, flows: int = 6) -> dict:
    """``flows`` full product reads of one system at once (4 pages each), as parallel flows would run them."""
    httpx.post(f"{base_url}/_sandbox/reset").raise_for_status()
    httpx.post(f"{base_url}/_sandbox/faults", json={"latency_ms": 40}).raise_for_status()
    config = msgspec.convert({"base_url": base_url, "limits": limits, "entities": {
        "products": {"service": "API_PRODUCT_SRV", "entity_set": "A_Product", "select": ["Product"]}}}, ODataConfig)
    counts: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with ODataConnector(system, config, {"user": USER, "password": PASSWORD}) as connector:
                counts.append(sum(len(page.records) for page in connector.read_full("products")))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(flows)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and counts == [40] * flows
    return httpx.get(f"{base_url}/_sandbox/stats").json()


def test_parallel_syncs_never_exceed_the_concurrency_limit(base_url: str) -> None:
    unlimited = sync_in_parallel(base_url, "s4-unlimited", None)
    assert unlimited["max_in_flight"] > 2  # without limits the flows do overlap at the ERP
    limited = sync_in_parallel(base_url, "s4-two-at-a-time", {"max_concurrent": 2})
    assert limited["requests"] == 24 and limited["max_in_flight"] <= 2


def test_parallel_syncs_never_exceed_the_request_rate(base_url: str) -> None:
    rate = 12.0
    stats = sync_in_parallel(base_url, "s4-rate", {"requests_per_second": rate, "max_concurrent": 4})
    started = sorted(stats["started"])
    assert len(started) == 24 and stats["max_in_flight"] <= 4
    # any one-second window holds at most the rate; +2 for requests the server sees later than they were sent
    for index, moment in enumerate(started):
        in_window = sum(1 for other in started[index:] if other < moment + 1.0)
        assert in_window <= rate + 2
    assert started[-1] - started[0] >= (len(started) - 1) / rate * 0.9


def test_connectors_of_one_system_share_its_limiter() -> None:
    limits = Limits(max_concurrent=1)
    assert limiter_for("erp-a", limits) is limiter_for("erp-a", limits)
    assert limiter_for("erp-a", limits) is not limiter_for("erp-b", limits)


def test_limiter_slot_is_given_back_on_error() -> None:
    limiter = Limiter(Limits(max_concurrent=1))
    with pytest.raises(RuntimeError), limiter.slot():
        raise RuntimeError("request failed")
    acquired = threading.Event()

    def take() -> None:
        with limiter.slot():
            acquired.set()

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(timeout=5)
    assert acquired.is_set()
