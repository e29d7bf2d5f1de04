"""The global manufacturer with a real Tryton as ERP Europe (``syncfabric demo --erp-europe tryton``), short.

The demo starts its own trytond from the Tryton environment, seeds the European company (cached), and plays the
day under both policies. Munich's stock reaches the planning platform from Tryton, and Munich's planned orders land
in Tryton once each although every planned order is sent twice."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from rich.console import Console

from syncfabric.observe.freshness import percentile
from syncfabric.sandbox.erp_europe import eu_code
from syncfabric.sandbox.global_demo import DAY_START, NIGHT, PLANNING, TICK, run_global_demo
from syncfabric.store import open_store

# The whole demo played twice with its own trytond: a minute and more, so it runs with the slow tests. By default
# the demo is played with the sandbox ERP Europe (tests/e2e/test_global_manufacturer.py), and the Tryton connector
# reads, writes and round-trips through the command line against a real Tryton (tests/connectors/tryton/).
pytestmark = [pytest.mark.tryton, pytest.mark.slow]

HOUR = 3600.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, str]:
    folder = tmp_path_factory.mktemp("global-manufacturer-tryton")
    console = Console(width=200, record=True)
    results = run_global_demo(console, duration=2, seed=7, folder=folder, hours=6, erp_europe="tryton")
    return results, folder, console.export_text()


def _store(folder: Path, policy: str):
    return open_store(f"sqlite:///{folder}/{policy}/.syncfabric/syncfabric.db")


def test_munich_stock_comes_from_tryton_and_reaches_the_planning_platform(demo) -> None:
    results, folder, _ = demo
    for policy, run in results.items():
        store = _store(folder, policy)
        try:
            balances = [row for row in store.current("inventory_balance") if row.key.split("|")[1] == "DE-MUC"]
            assert len(balances) == 24, policy
            for row in balances:
                balance = msgspec.json.decode(row.payload)
                # what Tryton holds at the end (in pieces), read from Tryton itself, is what the store holds
                assert float(balance["on_hand"]["value"]) == run.europe.stock[eu_code(balance["item_id"])], row.key
                assert balance["on_hand"]["unit"] == "EA"
                assert store.history("inventory_balance", row.key)[-1].lineage.source_system == "erp-eu"
            # and the platform holds what the store holds (reconciled: store against target, complete)
            assert run.completeness == 1.0, policy
            delivered = sum(d.records for d in store.deliveries(since=NIGHT, flow=PLANNING, entity="inventory_balance")
                            if d.group == "DE-MUC")
            assert delivered >= len(balances), policy
        finally:
            store.close()


def test_munich_stock_flows_during_the_day_under_hybrid_only(demo) -> None:
    results, folder, _ = demo
    day = {}
    for policy in results:
        store = _store(folder, policy)
        try:
            day[policy] = [d for d in store.deliveries(since=NIGHT, flow=PLANNING, entity="inventory_balance")
                           if d.group == "DE-MUC" and DAY_START <= d.newest_source_time < DAY_START + 6 * TICK * 4]
        finally:
            store.close()
    assert sum(d.records for d in day["hybrid"]) > 24  # read from Tryton every tick, sent as it changed
    assert all(d.latency_max <= HOUR for d in day["hybrid"])
    assert day["batch-only"] == []  # nothing until the next night's batch
    # minutes old under hybrid (the p95 of a 6-hour day falls in the planning platform's outage hour) ...
    assert percentile(results["hybrid"].ages, 0.5) <= 15 * 60 and percentile(results["hybrid"].ages, 0.95) <= 2 * HOUR
    assert percentile(results["batch-only"].ages, 0.5) >= 4 * HOUR  # ... against hours under batch only
    # Tryton and SAP stamp their balances with the read time only: the latency row counts the balances that say
    # when they changed (the legacy ERP's), so the night's read shows the day it waited, not the delivery alone
    assert percentile(results["hybrid"].latencies, 0.95) <= 2 * HOUR
    assert percentile(results["batch-only"].latencies, 0.5) >= 4 * HOUR


def test_munichs_planned_orders_land_in_tryton_once_though_sent_twice(demo) -> None:
    results, _, text = demo
    hybrid = results["hybrid"].europe
    assert hybrid.planned > 0  # this seed's day leaves Munich short: buy and make orders
    assert hybrid.documents["purchase.purchase"] > 0 and hybrid.documents["production"] > 0
    for run in results.values():
        europe = run.europe
        approved_later = len(run.planner_approved)  # written after the resend, by the demo's planner
        assert europe.resent >= europe.planned - europe.waiting - approved_later  # written ones went out twice
        assert sum(europe.documents.values()) == europe.planned - europe.waiting  # one document per written order...
        assert europe.duplicates == 0 and europe.dead_letters == 0  # ... and never a second one
    assert "planned orders for Munich → Tryton documents" in text


def test_the_429s_reach_the_connector_through_the_proxy_and_are_retried(demo) -> None:
    results, _, text = demo
    assert results["hybrid"].throttled == 3
    assert "ERP Europe         Tryton" in text
