"""The walking skeleton over real HTTP on 127.0.0.1: legacy ERP CSV exports → store → planning platform."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from syncfabric.config import load_estate
from syncfabric.flows.runtime import Runtime
from syncfabric.store import RunStatus
from tests.fixtures import walking_skeleton

INBOUND = ("locations-in", "items-in", "item-locations-in", "inventory-in")


@pytest.fixture
def estate(tmp_path: Path):
    with (walking_skeleton(tmp_path, seed=3, item_count=40, token="s3cret") as skeleton,
          Runtime(load_estate(skeleton.estate, environ=skeleton.environ)) as runtime):
        yield runtime, skeleton.erp, skeleton.url


def sync_all(runtime: Runtime) -> dict[str, int]:
    inbound = {name: runtime.run_flow(name).changed for name in INBOUND}
    inbound["planning-out"] = runtime.run_flow("planning-out").records_out
    return inbound


def received(url: str) -> dict:
    return httpx.get(f"{url}/api/_sandbox/received").json()


def test_first_run_delivers_everything_and_second_run_sends_nothing(estate) -> None:
    runtime, erp, url = estate
    first = sync_all(runtime)
    expected_inventory = len(erp.rows["inventory"])
    assert first["inventory-in"] == expected_inventory
    assert first["planning-out"] == sum(len(rows) for rows in erp.rows.values())
    buffers = httpx.get(f"{url}/api/input/buffer/", params={"limit": 10_000},
                        headers={"Authorization": "Bearer s3cret"}).json()
    assert len(buffers) == len(erp.rows["item_locations"])
    sent_before = received(url)

    again = sync_all(runtime)

    assert again == dict.fromkeys(again, 0)
    assert received(url)["write_requests"] == sent_before["write_requests"]
    assert all(run.status is RunStatus.SUCCEEDED for run in runtime.store.runs(limit=50))


def test_three_changed_records_send_exactly_three(estate) -> None:
    runtime, erp, url = estate
    sync_all(runtime)
    changed = erp.change_inventory(3)
    erp.export(("inventory",))

    assert runtime.run_flow("inventory-in").updated == 3
    out = runtime.run_flow("planning-out")

    assert out.records_out == 3
    assert out.per_entity == {"inventory_balance": 3}
    for key in changed:
        item, plant, _lot = key.split("|")
        stored = runtime.store.get("inventory_balance", key)
        assert stored is not None and stored.version == 2
        buffer = httpx.get(f"{url}/api/input/buffer/", params={"item": item, "location": plant},
                           headers={"Authorization": "Bearer s3cret"}).json()
        assert float(buffer[0]["onhand"]) == float(erp.rows["inventory"][(item, plant, "")]["ON_HAND"])


def test_bad_rows_are_quarantined_with_file_line_and_reason_and_the_rest_goes_through(estate) -> None:
    runtime, erp, _url = estate
    sync_all(runtime)
    erp.change_inventory(2)
    erp.add_bad_rows("inventory",
                     ["RM-00001", "P100", "", "12x", "EA", "0", "0", "2026-11-02T19:00:00Z"],
                     ["RM-00002", "P100", "LOT9", "5", "CRATE", "0", "0", "2026-11-02T19:00:00Z"],
                     ["", "P200", "", "7", "EA", "0", "0", "2026-11-02T19:00:00Z"],
                     ["short", "row"])
    [export] = erp.export(("inventory",))
    lines = len(erp.rows["inventory"]) + 1  # header + good rows come first

    result = runtime.run_flow("inventory-in")

    assert result.updated == 2 and result.quarantined == 4
    entries = {entry.location: entry for entry in runtime.store.quarantine(flow="inventory-in")}
    assert set(entries) == {f"{export.name}:{lines + n}" for n in range(1, 5)}
    reasons = [entries[f"{export.name}:{lines + n}"].reasons for n in range(1, 5)]
    assert "$.on_hand.value (column ON_HAND)" in reasons[0][0] and "'12x'" in reasons[0][0]
    assert reasons[1] == [f"unknown unit 'CRATE' @ $.{field}.unit (column UOM)"
                          for field in ("on_hand", "allocated", "in_inspection")]
    assert reasons[2] == ["missing required field @ $.item_id (column ITEM_NO)"]
    assert "expected 8 columns" in reasons[3][0]
    assert runtime.run_flow("planning-out").records_out == 2


def test_rows_missing_from_a_complete_snapshot_become_deletions(estate) -> None:
    runtime, erp, _url = estate
    sync_all(runtime)
    gone = sorted(erp.rows["inventory"])[0]
    del erp.rows["inventory"][gone]
    erp.change_inventory(1)
    erp.export(("inventory",))

    assert runtime.run_flow("inventory-in").deleted == 1
    row = runtime.store.get("inventory_balance", "|".join(gone))
    assert row is not None and row.deleted
    assert runtime.run_flow("planning-out").records_out == 2


def test_files_are_archived_and_never_read_twice(estate) -> None:
    runtime, erp, _url = estate
    drop = erp.folder
    sync_all(runtime)
    assert sorted(p.name for p in drop.glob("*.csv")) == []
    assert len(list((drop / "archive").glob("*.csv"))) == 4
    checkpoint = runtime.store.checkpoint("items-in")
    assert runtime.run_flow("items-in").records_in == 0
    assert runtime.store.checkpoint("items-in") == checkpoint
