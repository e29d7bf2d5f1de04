"""The global manufacturer demo, short: hybrid sync against nightly batch, measured by the product itself.

Done when: inventory at the planning platform is minutes old under the hybrid policy and hours old under batch
only, completeness is 100% after reconciliation, every injected fault is visible where it belongs (quarantine,
retried 429s, dead letter replayed after the fix, fallback alert) and nothing is lost."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from rich.console import Console

from syncfabric.observe.freshness import percentile
from syncfabric.sandbox.global_demo import run_global_demo
from syncfabric.store import open_store

HOUR = 3600.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    folder = tmp_path_factory.mktemp("global-manufacturer")
    console = Console(width=160, record=True)
    results = run_global_demo(console, duration=2, seed=7, folder=folder, hours=6, mqtt=False)
    assert results["hybrid"].transport == "webhooks"
    return results, folder


def test_inventory_is_minutes_old_under_hybrid_and_hours_old_under_batch(demo: tuple[dict, Path]) -> None:
    results, _ = demo
    hybrid, batch = results["hybrid"], results["batch-only"]
    assert hybrid.ages and batch.ages
    # minutes old under hybrid; this short day's p95 falls in the planning platform's outage hour
    assert percentile(hybrid.ages, 0.5) <= 15 * 60 and percentile(hybrid.ages, 0.95) <= 2 * HOUR
    assert percentile(batch.ages, 0.5) >= 4 * HOUR
    assert max(hybrid.ages) < percentile(batch.ages, 0.5)
    # from each change at the source (the balances that say when they changed) to the platform: minutes, against
    # the rest of the day and the night under batch only
    assert hybrid.latencies and batch.latencies
    assert percentile(hybrid.latencies, 0.5) <= 15 * 60 and percentile(hybrid.latencies, 0.95) <= 2 * HOUR
    assert percentile(batch.latencies, 0.5) >= 4 * HOUR


def test_completeness_is_complete_after_reconciliation_under_both(demo: tuple[dict, Path]) -> None:
    results, _ = demo
    assert results["hybrid"].completeness == 1.0 and results["batch-only"].completeness == 1.0


def test_every_injected_fault_is_where_it_belongs_and_nothing_is_lost(demo: tuple[dict, Path]) -> None:
    results, folder = demo
    hybrid = results["hybrid"]
    store = open_store(f"sqlite:///{folder}/hybrid/.syncfabric/syncfabric.db")
    try:
        quarantined = store.quarantine()
        # malformed MES events: quarantined with reason and path, each distinct one at least once
        assert hybrid.malformed_sent > 0
        assert len({entry.payload for entry in quarantined}) == hybrid.malformed_sent
        assert all(entry.system == "plant-mes" and "12,5 pcs" in entry.reasons[0] and " @ $." in entry.reasons[0]
                   for entry in quarantined)
        # every other event is in the store, once
        assert hybrid.events == hybrid.events_emitted - hybrid.malformed_sent
        # ERP Europe's 429s were retried: its stock is complete (above) and the throttling happened
        assert hybrid.throttled == 3
        # the refused record was dead-lettered, then replayed after the fix
        assert hybrid.dead_letters >= 1 and hybrid.open_dead_letters == 0
        # the legacy import refused the orders of the vendor a buyer blocked: read back from its reject files into
        # dead letters naming file, line and order, replayed after the vendor was unblocked, and booked
        for run in results.values():
            assert run.import_refusals and run.refusals_replayed == len(run.import_refusals)
            for key, reason in run.import_refusals:
                assert re.fullmatch(rf"erp-apac refused it on import: orders_\w+\.csv:\d+ ORDER_REF {key}: vendor "
                                    r"V-\d+ is blocked for purchasing", reason), reason
        assert not [letter for letter in store.dead_letters(flow="apac-planned-orders-out")
                    if "refused it on import" in letter.reason]
        # the outage made the flow fall back, and it came back
        kinds = [alert.kind for alert in reversed(store.alerts("planning-out", limit=50))]
        assert "fallback" in kinds and kinds[-1] == "recovered"
    finally:
        store.close()


def test_planned_orders_land_in_their_own_erp_exactly_once(demo: tuple[dict, Path]) -> None:
    results, folder = demo
    for run in results.values():
        assert run.planned_orders > 0
        # every order was sent twice (delivery, then resend): each ERP holds one document per planned order it owns,
        # and every planned order is written or waits for review
        store = open_store(f"sqlite:///{folder}/{run.name}/.syncfabric/syncfabric.db")
        try:
            owner = {"1710": "ERP North America (SAP)", "1010": "ERP North America (SAP)", "DE-MUC": "ERP Europe"}
            expected: Counter[tuple[str, str]] = Counter()
            waiting = {key for _, key, _ in run.waiting}
            for row in store.current("planned_order"):
                order = msgspec.json.decode(row.payload)
                if row.key not in waiting:
                    kind = "purchase" if order["order_type"] == "buy" else "production"
                    expected[owner.get(order["location_id"], "ERP Asia-Pacific (legacy)"), kind] += 1
        finally:
            store.close()
        assert +run.orders == +expected
        assert sum(run.orders.values()) + len(run.waiting) == run.planned_orders
    hybrid = results["hybrid"]
    assert {erp for erp, _ in +hybrid.orders} == {"ERP North America (SAP)", "ERP Europe", "ERP Asia-Pacific (legacy)"}
    assert hybrid.orders["ERP Europe", "production"] > 0 and hybrid.orders["ERP North America (SAP)", "production"] > 0
    assert hybrid.orders["ERP Asia-Pacific (legacy)", "production"] > 0  # from the BOMs of its nightly export


def test_exceptions_wait_for_planner_review_until_approved(demo: tuple[dict, Path]) -> None:
    results, _ = demo
    hybrid = results["hybrid"]
    assert hybrid.planner_approved  # the demo's planner approved one exception, which was then written
    assert all(why.startswith("quantity ") or why.startswith("due date ") for _, _, why in hybrid.waiting)
    assert hybrid.planner_approved[0] not in {key for _, key, _ in hybrid.waiting}


def test_batch_only_processes_no_events_during_the_day(demo: tuple[dict, Path]) -> None:
    results, _ = demo
    assert results["batch-only"].events == 0 and results["hybrid"].events > 0


@pytest.mark.mosquitto
@pytest.mark.slow  # the demo played again; by default tests/events/ ingest MQTT events from a real broker
def test_the_plants_publish_over_mqtt_when_a_broker_is_there(tmp_path: Path) -> None:
    """The demo's MQTT path against a real mosquitto it starts itself: every MES event is published with QoS 1 to
    its plant topic, ingested by `listen` over MQTT, stored once (duplicates included) or quarantined (malformed)."""
    console = Console(width=160, record=True)
    results = run_global_demo(console, duration=1, seed=5, folder=tmp_path, hours=3, mqtt=True)
    hybrid = results["hybrid"]
    assert hybrid.transport == "mqtt"
    assert "MES events over MQTT" in console.export_text()
    estate = (tmp_path / "hybrid" / "estate.yaml").read_text()
    assert "kind: mqtt" in estate and 'source: "mfg/production/completed/+"' in estate
    assert hybrid.malformed_sent > 0 and hybrid.events == hybrid.events_emitted - hybrid.malformed_sent
    store = open_store(f"sqlite:///{tmp_path}/hybrid/.syncfabric/syncfabric.db")
    try:
        quarantined = store.quarantine()
        assert len({entry.payload for entry in quarantined}) == hybrid.malformed_sent
        assert all(entry.system == "plant-mes" and "mqtt://" in entry.location for entry in quarantined)
        completions = list(store.current("production_completion"))
        assert completions and {msgspec.json.decode(row.payload)["location_id"] for row in completions} <= {
            "1710", "1010", "DE-MUC", "P100"}
    finally:
        store.close()


@pytest.mark.slow
def test_the_full_day_at_default_length_shows_the_same(tmp_path: Path) -> None:
    results = run_global_demo(Console(width=160, quiet=True), duration=30, seed=11, folder=tmp_path)
    hybrid, batch = results["hybrid"], results["batch-only"]
    assert percentile(hybrid.ages, 0.95) <= HOUR < 4 * HOUR <= percentile(batch.ages, 0.5)
    assert hybrid.completeness == batch.completeness == 1.0
    assert hybrid.open_dead_letters == 0 and hybrid.fallbacks >= 1 and hybrid.orders
