"""The batch engine as a new user tries it, through the command line, over real HTTP on 127.0.0.1: a full refresh of
a legacy ERP's CSV exports into the store and on to the planning platform, a second run that writes nothing, a
net-change run after the export was edited (changed, removed and new rows), and ``syncfabric reconcile`` finding
source, store and target equal, or naming what differs and exiting 1."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from syncfabric.store import RunStatus, open_store
from tests.fixtures import walking_skeleton

TOKEN = "s3cret"
ITEMS = 2_000
"""Items of the legacy ERP (about as many stock balances again)."""
DOMAINS = ("locations", "items", "item-locations", "inventory")


@pytest.fixture
def estate(tmp_path: Path):
    with walking_skeleton(tmp_path, seed=5, item_count=ITEMS, token=TOKEN) as skeleton:
        env = {**os.environ, **skeleton.environ, "SYNCFABRIC_ESTATE": str(skeleton.estate), "COLUMNS": "200"}
        yield tmp_path, skeleton.erp, skeleton.url, env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncfabric.cli", *args], env=env, cwd=env["SYNCFABRIC_ESTATE"]
                          .rsplit("/", 1)[0], capture_output=True, text=True, timeout=300)


def moved(output: str) -> dict[str, list[int]]:
    """The 'What moved' table: per flow, read, inserted, updated, deleted, unchanged, sent, quarantined."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│┃").split("│")]
        if len(cells) == 9 and cells[1] in ("inbound", "outbound"):
            rows[cells[0]] = [int(cell.replace(",", "")) for cell in cells[2:]]
    return rows


def received(url: str) -> dict:
    return httpx.get(f"{url}/api/_sandbox/received").json()


def test_full_refresh_nothing_again_net_change_and_reconcile_through_the_cli(estate) -> None:
    folder, erp, url, env = estate
    inventory = len(erp.rows["inventory"])
    assert inventory >= 1_000  # so that one key in all of them that differs shows as 99.9% below

    first = cli(env, "sync", "--all")
    assert first.returncode == 0, first.stderr
    table = moved(first.stdout)
    assert table["inventory-in"][:2] == [inventory, inventory]  # read, inserted
    assert table["planning-out"][5] == sum(len(rows) for rows in erp.rows.values())  # sent
    for domain in DOMAINS:
        check = cli(env, "reconcile", domain)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "source, store and target match" in check.stdout

    erp.clock += dt.timedelta(hours=1)  # the next night's export: same content, a new file
    erp.export()
    requests = received(url)["write_requests"]
    second = cli(env, "sync", "--all")
    assert second.returncode == 0, second.stderr
    table = moved(second.stdout)
    assert table["inventory-in"] == [inventory, 0, 0, 0, inventory, 0, 0]
    assert table["planning-out"][5] == 0
    assert received(url)["write_requests"] == requests

    changed = erp.change_inventory(40)
    keys = sorted(key for key in erp.rows["inventory"] if "|".join(key) not in changed)
    for key in keys[:10]:
        del erp.rows["inventory"][key]
    plants = sorted({plant for _, plant, _ in erp.rows["inventory"]})
    item, plant = next((item, plant) for (item,) in sorted(erp.rows["items"]) for plant in plants
                       if (item, plant, "") not in erp.rows["inventory"])  # new stock of a known item
    erp.rows["inventory"][(item, plant, "")] = {**erp.rows["inventory"][keys[10]], "ITEM_NO": item, "SITE": plant}
    erp.export(("inventory",))
    third = cli(env, "sync", "inventory-in", "planning-out")
    assert third.returncode == 0, third.stderr
    table = moved(third.stdout)
    assert table["inventory-in"][1:5] == [1, 40, 10, inventory - 40 - 10]  # inserted, updated, deleted, unchanged
    assert table["planning-out"][5] == 51

    check = cli(env, "reconcile", "inventory")
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{inventory - 10 + 1:,}" in check.stdout  # keys on every side

    # The planning platform drifts: one buffer's stock is changed there by hand. Reconcile names it and fails.
    item, plant, _ = sorted(erp.rows["inventory"])[0]
    response = httpx.put(f"{url}/api/input/buffer/", headers={"Authorization": f"Bearer {TOKEN}"},
                         json=[{"item": item, "location": plant, "batch": "", "onhand": 123456.0}])
    assert response.status_code == 200
    drift = cli(env, "reconcile", "inventory")
    assert drift.returncode == 1
    assert "different" in drift.stdout and f"{item}|{plant}|" in drift.stdout
    assert "they differ" in drift.stderr

    status = cli(env, "status")
    observed = status.stdout[status.stdout.index("Freshness and completeness"):]
    [line] = [line for line in observed.splitlines() if line.startswith("│ inventory ")]
    keys = inventory - 10 + 1
    assert f"99.9% ({keys - 1:,}/{keys:,})" in line and "✗" in line  # one key differs at the target: SLA missed
    assert any(line.startswith("│ items ") and "100.0%" in line for line in observed.splitlines())

    with open_store(f"sqlite:///{folder}/.syncfabric/syncfabric.db") as store:
        runs = store.runs("reconcile:inventory", limit=10)
        assert [run.status for run in runs[:2]] == [RunStatus.FAILED, RunStatus.SUCCEEDED]
        [target] = [c for c in runs[0].detail["comparisons"] if "planning" in c["right"]]
        assert target["different"] == 1 and target["samples"]["different"] == [f"{item}|{plant}|"]


def test_reconcile_sees_a_source_the_store_has_not_caught_up_with(estate) -> None:
    _folder, erp, _url, env = estate
    assert cli(env, "sync", "items-in").returncode == 0
    [removed] = sorted(erp.rows["items"])[0]
    del erp.rows["items"][(removed,)]
    erp.clock += dt.timedelta(hours=1)
    erp.export(("items",))  # dropped, not synced yet

    check = cli(env, "reconcile", "item")
    assert check.returncode == 1
    assert f"extra: {removed}" in check.stdout  # the store still holds what the source no longer has
    [target_row] = [line for line in check.stdout.splitlines() if line.startswith("│ store (as planning holds it)")]
    assert f"│ {ITEMS:,} │ 0     │ {ITEMS:,}   │" in target_row  # nothing was sent yet: every key is missing there

    unknown = cli(env, "reconcile", "nonsense")
    assert unknown.returncode == 2 and "unknown domain or entity 'nonsense'" in unknown.stderr
