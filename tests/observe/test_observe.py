"""What the product measures about itself, from real flows: a legacy ERP's CSV exports read by an inbound flow, the
planning platform fed over HTTP, reconciliation, ``status`` and a Prometheus scrape."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from typer.testing import CliRunner

from syncfabric.cli import app
from syncfabric.config import load_estate
from syncfabric.observe.clock import use_clock
from syncfabric.observe.completeness import completeness
from syncfabric.observe.freshness import age_profile, freshness, percentile
from syncfabric.observe.metrics import serve
from syncfabric.observe.summary import comparison_table, measure
from syncfabric.sandbox.legacy_erp import LegacyErp
from syncfabric.store import Store, open_store
from tests.fixtures import WALKING_SKELETON, walking_skeleton

runner = CliRunner()
NIGHT = dt.datetime(2026, 11, 2, 18, 0, tzinfo=dt.UTC)
"""The legacy ERP's first snapshot time (SNAPSHOT_UTC of every balance)."""
INVENTORY_SLA = "sla: {completeness: 1.0}}"


class Estate:
    def __init__(self, folder: Path, erp: LegacyErp) -> None:
        self.folder = folder
        self.erp = erp

    def run(self, *args: str, at: dt.datetime) -> str:
        with use_clock(lambda: at):
            result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    def store(self) -> Store:
        return open_store(f"sqlite:///{self.folder}/.syncfabric/syncfabric.db")

    def sla(self, freshness_minutes: float) -> None:
        path = self.folder / "estate.yaml"
        text = WALKING_SKELETON.read_text().replace(
            INVENTORY_SLA, f"sla: {{completeness: 1.0, freshness_minutes: {freshness_minutes}}}}}")
        assert text != WALKING_SKELETON.read_text()
        path.write_text(text)


@pytest.fixture
def estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Estate]:
    with walking_skeleton(tmp_path, seed=11, item_count=15) as skeleton:
        skeleton.use(monkeypatch)
        yield Estate(tmp_path, skeleton.erp)


def night_and_morning(estate: Estate) -> list[str]:
    """The nightly load confirmed at 18:05; then three balances move at 19:00 and are confirmed at 19:02."""
    estate.run("sync", "--all", at=NIGHT + dt.timedelta(minutes=5))
    moved = estate.erp.change_inventory(3)  # stamped 19:00 at the source
    estate.erp.export(("inventory",))
    estate.run("sync", "inventory-in", "planning-out", at=NIGHT + dt.timedelta(hours=1, minutes=2))
    return moved


def test_freshness_and_latency_per_location_from_source_times(estate: Estate) -> None:
    moved = night_and_morning(estate)
    now = NIGHT + dt.timedelta(hours=1, minutes=10)
    moved_sites = {key.split("|")[1] for key in moved}
    with estate.store() as store:
        balances = {row.key.split("|")[1] for row in store.current("inventory_balance")}
        stats = freshness(store, flow="planning-out", entity="inventory_balance", now=now)
        overall = freshness(store, flow="planning-out", entity="inventory_balance", group_by=None, now=now)
        count = store.count("inventory_balance")
    assert {s.group for s in stats} == balances and len(balances) >= 2
    for s in stats:
        if s.group in moved_sites:  # newest fact there: 19:00, confirmed 19:02
            assert s.newest_source_time == NIGHT + dt.timedelta(hours=1)
            assert s.age_seconds == 600
            assert s.latency_p50 == s.latency_p95 == s.latency_max == 120
        else:  # only the night's 18:00 snapshot, confirmed at 18:05, before the one-hour window
            assert s.newest_source_time == NIGHT
            assert s.age_seconds == 70 * 60
            assert s.window_records == 0 and s.latency_p95 is None
    [total] = overall
    assert total.group == "" and total.records == count + 3  # every balance once, the moved ones twice
    assert total.window_records == 3 and total.age_seconds == 600
    # A wider window takes the night in: 3 records at 2 min, the others at 5 min.
    wide = freshness(estate.store(), flow="planning-out", entity="inventory_balance", group_by=None, now=now,
                     window=dt.timedelta(hours=2))[0]
    assert wide.window_records == count + 3 and wide.latency_p50 == 300 and wide.latency_max == 300


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5.0, 1.0, 3.0, 2.0], 0.5) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 0.95) == 95.0


def test_completeness_short_of_all_never_reads_100_percent() -> None:
    from syncfabric.observe.status import percent_down

    assert percent_down(9_942 / 9_943) == "99.9%"
    assert percent_down(1.0) == "100.0%" and percent_down(0.0) == "0.0%"
    assert percent_down(0.29) == "29.0%" and percent_down(0.5) == "50.0%" and percent_down(2 / 3) == "66.6%"


def test_status_shows_sla_verdicts_and_completeness_from_reconciliation(estate: Estate) -> None:
    night_and_morning(estate)
    later = NIGHT + dt.timedelta(hours=1, minutes=10)
    estate.run("reconcile", "inventory", at=later)
    with estate.store() as store:
        [stat] = completeness(store)
        assert stat.domain == "inventory" and stat.completeness == 1.0 and stat.missing == stat.different == 0
        assert stat.keys == store.count("inventory_balance") and len(stat.comparisons) == 2

    estate.sla(freshness_minutes=90)  # oldest location: 70 minutes
    document = json.loads(estate.run("status", "--json", at=later))
    [fresh] = [f for f in document["freshness"] if f["domain"] == "inventory"]
    assert fresh["verdict"] == "met" and fresh["age_seconds"] == 70 * 60 and fresh["latency_p95"] == 120
    [complete] = [c for c in document["completeness"] if c["domain"] == "inventory"]
    assert complete["verdict"] == "met" and complete["completeness"] == 1.0
    shown = estate.run("status", at=later)
    assert "Freshness and completeness" in shown and "Reconciliations" not in shown  # shown once, in this table
    observed = shown[shown.index("Freshness and completeness"):]
    row = next(line for line in observed.splitlines() if line.startswith("│ inventory "))
    assert "✓ ≤ 90 min" in row and "1h 10m" in row and "100.0%" in row and "✓ ≥ 100%" in row
    assert "(33/33)" in observed  # equal of keys, in the completeness cell (wrapped when the table is narrow)

    estate.sla(freshness_minutes=30)
    document = json.loads(estate.run("status", "--json", at=later))
    [fresh] = [f for f in document["freshness"] if f["domain"] == "inventory"]
    assert fresh["verdict"] == "missed" and document["sla_met"] is False

    # The source moves on without a sync: the next reconciliation finds the store behind.
    estate.erp.change_inventory(4)
    estate.erp.export(("inventory",))
    estate_run = runner.invoke(app, ["reconcile", "inventory"])
    assert estate_run.exit_code == 1
    with estate.store() as store:
        [stat] = completeness(store)
        keys = store.count("inventory_balance")
    assert stat.different == 4 and stat.completeness == (keys - 4) / keys
    document = json.loads(estate.run("status", "--json", at=later))
    [complete] = [c for c in document["completeness"] if c["domain"] == "inventory"]
    assert complete["verdict"] == "missed" and complete["equal"] == keys - 4


def test_metrics_scraped_over_http(estate: Estate) -> None:
    estate.erp.add_bad_rows("inventory", ["RM-00001", "P100", "", "-x", "EA", "0", "0", "2026-11-02T19:00:00Z"])
    night_and_morning(estate)
    loaded = load_estate(estate.folder / "estate.yaml")
    now = NIGHT + dt.timedelta(hours=1, minutes=10)
    with estate.store() as store, use_clock(lambda: now), serve(loaded.estate, store, port=0) as url:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        count = store.count("inventory_balance")
    families = {family.name: family for family in text_string_to_metric_families(text)}
    ages = {s.labels["location"]: s.value for s in families["syncfabric_freshness_age_seconds"].samples
            if s.labels["entity"] == "inventory_balance"}
    assert set(ages.values()) == {600.0, 4200.0}
    latency = {s.name: s.value for s in families["syncfabric_delivery_latency_seconds"].samples
               if s.labels["flow"] == "planning-out" and s.labels.get("le") in (None, "120.0", "+Inf")}
    delivered = sum(s.value for s in families["syncfabric_records_delivered"].samples
                    if s.labels["flow"] == "planning-out")
    assert latency["syncfabric_delivery_latency_seconds_count"] == delivered
    assert delivered >= count + 3
    quarantined = [s for s in families["syncfabric_quarantined"].samples if s.labels["flow"] == "inventory-in"]
    assert len(quarantined) == 1 and quarantined[0].value == 1
    assert quarantined[0].labels["reason"] == "invalid decimal string"  # the value is cut off
    records_in = {s.labels["flow"]: s.value for s in families["syncfabric_flow_records_in"].samples}
    assert records_in["inventory-in"] == (count + 1) + count  # the night's export had the bad row too


def test_metrics_command_prints_the_exposition(estate: Estate) -> None:
    night_and_morning(estate)
    text = estate.run("metrics", at=NIGHT + dt.timedelta(hours=2))
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"syncfabric_freshness_age_seconds", "syncfabric_completeness_ratio", "syncfabric_dead_letters",
            "syncfabric_delivery_latency_seconds", "syncfabric_flow_records_out"} <= names


def test_age_profile_over_the_morning(estate: Estate) -> None:
    night_and_morning(estate)  # night at 18:00 confirmed 18:05; 19:00 changes confirmed 19:02
    with estate.store() as store:
        sites = {row.key.split("|")[1] for row in store.current("inventory_balance")}
        moved = {d.group for d in store.deliveries(since=NIGHT + dt.timedelta(hours=1), flow="planning-out",
                                                    entity="inventory_balance")}
        profile = age_profile(store, flow="planning-out", entity="inventory_balance",
                              start=NIGHT, end=NIGHT + dt.timedelta(hours=1, minutes=10),
                              step=dt.timedelta(minutes=10))
    # Moments 18:00 ... 19:10 (8); at 18:00 nothing was confirmed yet.
    assert profile.uncovered == len(sites) and profile.samples == 7 * len(sites)
    # 18:10 ... 19:00 (6 moments): every site 10 ... 60 minutes old; at 19:10 the moved sites 10, the others 70.
    expected = sorted([60.0 * m for m in range(10, 70, 10) for _ in sites]
                      + [600.0 if site in moved else 4200.0 for site in sites])
    assert len(moved) < len(sites) and profile.max == 4200.0
    assert profile.p50 == percentile(expected, 0.5) and profile.p95 == percentile(expected, 0.95)


def test_measure_a_period_and_compare(estate: Estate) -> None:
    estate.erp.add_bad_rows("inventory", ["RM-00001", "P100", "", "-x", "EA", "0", "0", "2026-11-02T19:00:00Z"])
    night_and_morning(estate)
    estate.run("reconcile", "inventory", at=NIGHT + dt.timedelta(hours=2))
    loaded = load_estate(estate.folder / "estate.yaml")
    with estate.store() as store:
        morning = measure(loaded.estate, store, flow="planning-out", entity="inventory_balance",
                          start=NIGHT + dt.timedelta(minutes=30), end=NIGHT + dt.timedelta(hours=1, minutes=10),
                          step=dt.timedelta(minutes=10))
    assert morning.delivered == 3 and morning.latency_p50 == morning.latency_max == 120
    assert morning.age.max == 70 * 60 and morning.age.uncovered == 0
    assert morning.completeness == {"inventory": 1.0}
    assert morning.quarantined == {"invalid decimal string": 1} and morning.dead_letters == {}
    assert morning.events == 0  # the walking skeleton has no event flows
    console = Console(width=120, record=True)
    console.print(comparison_table({"hybrid": morning, "batch only": morning}))
    text = console.export_text()
    assert "age of inventory_balance at planning-out: p50" in text and "100.0%" in text
    assert "invalid decimal string" in text


def test_metrics_prune_command_keeps_freshness(estate: Estate) -> None:
    night_and_morning(estate)
    now = NIGHT + dt.timedelta(hours=1, minutes=10)
    with estate.store() as store:
        before = {s.group: s.age_seconds for s in freshness(store, entity="inventory_balance", now=now)}
        rows = len(store.deliveries(since=NIGHT - dt.timedelta(days=1)))
        groups = len(store.delivery_groups())
    shown = estate.run("metrics", "prune", "--days", "0", at=now)
    assert f"deleted {rows - groups:,} delivery-log rows" in shown
    with estate.store() as store:
        assert len(store.deliveries(since=NIGHT - dt.timedelta(days=1))) == groups
        assert {s.group: s.age_seconds for s in freshness(store, entity="inventory_balance", now=now)} == before
