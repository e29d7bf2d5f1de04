"""Continuous delivery of the walking-skeleton estate, end to end over real HTTP: the legacy ERP's exports land in
the store, `planning-out` streams them to the planning platform with the estate's own retry and fallback policies,
the platform goes down while new balances keep arriving, the flow falls back to batch catch-up, and when the
platform is back every change is there exactly once, in per-key order, as the reconciliation confirms."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from syncfabric.config import load_estate
from syncfabric.flows.runtime import Runtime
from syncfabric.flows.stream import FALLBACK, STREAMING, consumer_for
from tests.fixtures import WALKING_SKELETON, walking_skeleton
from tests.flows.delivery_support import running, wait_for

INBOUND = ("locations-in", "items-in", "item-locations-in", "inventory-in")
FLOW = "planning-out"


@pytest.fixture
def estate(tmp_path: Path):
    text = WALKING_SKELETON.read_text()
    text = text.replace("retry: {max_attempts: 5, base_delay_seconds: 0.5, max_delay_seconds: 30, jitter: 0.2}",
                        "retry: {max_attempts: 3, base_delay_seconds: 0.02, max_delay_seconds: 0.1}\n"
                        "      poll_interval_seconds: 0.02")
    text = text.replace("fallback: {outage_seconds: 60, lag_seconds: 300, catch_up_interval_seconds: 30}",
                        "fallback: {outage_seconds: 0.5, catch_up_interval_seconds: 0.3}")
    assert "outage_seconds: 0.5" in text and "poll_interval_seconds: 0.02" in text
    with (walking_skeleton(tmp_path, seed=9, item_count=30, token="s3cret", text=text) as skeleton,
          Runtime(load_estate(skeleton.estate, environ=skeleton.environ)) as runtime):
        yield runtime, skeleton.erp, skeleton.url


def test_the_platform_goes_down_while_balances_keep_arriving(estate) -> None:
    runtime, erp, url = estate
    control = httpx.Client(base_url=f"{url}/api/_sandbox")
    store = runtime.store
    for name in INBOUND:
        runtime.run_flow(name)
    with runtime.connector("planning") as connector:
        consumer = consumer_for(runtime, FLOW, connector)
        assert consumer.fallback is not None and consumer.retry.max_attempts == 3
        with running(consumer):
            wait_for(lambda: store.checkpoint(FLOW) == str(store.head()), what="the first load")
            control.post("/faults", json={"outage": True}).raise_for_status()
            for _ in range(3):  # the plant keeps counting stock while the platform is down
                erp.change_inventory(4)
                erp.export(("inventory",))
                runtime.run_flow("inventory-in")
                time.sleep(0.2)
            wait_for(lambda: consumer.stats.mode == FALLBACK, what="the fallback")
            assert store.checkpoint(FLOW) != str(store.head())
            control.post("/faults", json={"outage": False}).raise_for_status()
            wait_for(lambda: consumer.stats.mode == STREAMING and store.checkpoint(FLOW) == str(store.head()),
                     what="the catch-up")

    seen: dict[tuple[str, str], list[int]] = {}
    for entry in control.get("/journal").json():
        assert entry["effect"] != "stale", entry
        if entry["effect"] != "duplicate":
            seen.setdefault((entry["stream"], entry["key"]), []).append(entry["version"])
    assert all(versions == sorted(set(versions)) for versions in seen.values())
    balances = {key: versions for (stream, key), versions in seen.items() if stream == "inventory_balance"}
    assert sum(len(versions) > 1 for versions in balances.values()) >= 4  # balances that moved arrived again
    recovered = next(a for a in store.alerts(FLOW) if a.kind == "recovered")
    checks = {check["entity"]: check for check in recovered.detail["reconciliation"]}
    assert set(checks) == {"location", "item", "item_location", "inventory_balance"}
    assert all(check["ok"] for check in checks.values()), checks
    assert checks["inventory_balance"]["store_count"] == len(erp.rows["inventory"])
    assert store.dead_letters() == []
