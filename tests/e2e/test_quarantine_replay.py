"""Data-quality rules and the quarantine workflow, end to end through the command line.

A plant's inventory export has a negative quantity, an unknown item, an item stocked where it is not valid, and a
record missing an optional figure that a warn rule asks for. The bad ones are quarantined with their reasons at
their paths, the warned one passes and is counted; the user fixes the data (edit) or the estate (a rule) and
replays by reason; replayed records reach the store and every step is in the entry's history.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syncfabric.store import QuarantineAction, QuarantineStatus, Store
from tests.fixtures import cli, estate_with, store_of

ESTATE = """\
version: 1
name: quarantine-replay
store: sqlite:///.syncfabric/syncfabric.db
systems:
  erp-na:
    kind: files
    connection: {folder: drop}
mappings:
  items: {system: erp-na, entity: item, fields: {item_id: ITEM_NO, base_unit: UOM}}
  locations: {system: erp-na, entity: location, fields: {location_id: SITE, kind: SITE_TYPE}}
  item-locations: {system: erp-na, entity: item_location, fields: {item_id: ITEM_NO, location_id: SITE}}
  inventory:
    system: erp-na
    entity: inventory_balance
    fields:
      item_id: ITEM_NO
      location_id: SITE
      on_hand: {value: ON_HAND, unit: UOM}
      as_of: SNAPSHOT_UTC
flows:
  locations-in: {direction: inbound, system: erp-na, entities: [location], mode: changes,
                 source: "locations_*.csv", mapping: locations}
  items-in: {direction: inbound, system: erp-na, entities: [item], mode: changes,
             source: "items_*.csv", mapping: items}
  item-locations-in: {direction: inbound, system: erp-na, entities: [item_location], mode: changes,
                      source: "item_locations_*.csv", mapping: item-locations}
  inventory-in: {direction: inbound, system: erp-na, entities: [inventory_balance], mode: changes,
                 source: "inventory_*.csv", mapping: inventory}
rules:
  inventory_balance:
    - {kind: range, field: on_hand, min: 0}
    - {kind: range, field: on_hand, max: 1000, severity: warn}
    - {kind: reference, field: item_id, entity: item}
    - {kind: reference, field: location_id, entity: location}
    - {kind: item_location}
"""

FILES = {
    "locations_1.csv": "SITE,SITE_TYPE\nP1,plant\nP2,plant\n",
    "items_1.csv": "ITEM_NO,UOM\nA,EA\nB,EA\nC,EA\n",
    "item_locations_1.csv": "ITEM_NO,SITE\nA,P1\nB,P1\nC,P2\n",
    "inventory_1.csv": (
        "ITEM_NO,SITE,ON_HAND,UOM,SNAPSHOT_UTC\n"
        "A,P1,10,EA,2025-03-01T06:00:00Z\n"
        "B,P1,-5,EA,2025-03-01T06:00:00Z\n"
        "C,P2,3000,EA,2025-03-01T06:00:00Z\n"
        "Z,P1,1,EA,2025-03-01T06:00:00Z\n"
        "A,P2,4,EA,2025-03-01T06:00:00Z\n"
    ),
}


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    return estate_with(tmp_path, ESTATE, FILES)


def entry_with(store: Store, text: str):
    (entry,) = store.quarantine(status=None, reason=text)  # exactly one
    return entry


def test_rules_quarantine_and_count_then_fixes_replay_into_the_store(estate: Path) -> None:
    cli(estate, "sync", "locations-in", "items-in", "item-locations-in", "inventory-in")

    with store_of(estate) as store:
        assert store.count("inventory_balance") == 2  # A@P1 and C@P2 (warned)
        negative = entry_with(store, "on_hand must be ≥ 0")
        assert negative.reasons == ["on_hand must be ≥ 0 @ $.on_hand (system erp-na, key B|P1|)"]
        assert negative.record_key == "B|P1|" and negative.location.endswith("inventory_1.csv:3")
        unknown = entry_with(store, "unknown item")
        assert unknown.reasons == ["unknown item 'Z' @ $.item_id (system erp-na, key Z|P1|)",
                                   "item 'Z' is not valid at location 'P1' @ $.item_id (system erp-na, key Z|P1|)"]
        invalid = entry_with(store, "not valid at location 'P2'")
        assert invalid.reasons == ["item 'A' is not valid at location 'P2' @ $.item_id (system erp-na, key A|P2|)"]
        (run,) = store.runs("inventory-in")
        assert run.quarantined == 3 and run.detail["warned"] == 1
        assert run.detail["warnings"] == ["on_hand must be ≤ 1000 @ $.on_hand (system erp-na, key C|P2|)"]

    listed = cli(estate, "quarantine", "list", "--reason", "must be ≥ 0")
    assert "1 quarantined" in listed and "B|P1|" in listed
    shown = cli(estate, "quarantine", "show", str(negative.id))
    assert "on_hand must be ≥ 0 @ $.on_hand" in shown and '"ON_HAND": "-5"' in shown and "created" in shown

    # Fix the data, then replay by reason.
    cli(estate, "quarantine", "edit", str(negative.id), "--set", "ON_HAND=5")
    out = cli(estate, "quarantine", "replay", "--reason", "must be ≥ 0")
    assert "replayed 1, failed again 0" in out

    # Fix the estate instead: the item-location rule only warns now.
    estate.write_text(ESTATE.replace("- {kind: item_location}", "- {kind: item_location, severity: warn}"))
    out = cli(estate, "quarantine", "replay", "--reason", "not valid at location 'P2'")
    assert "replayed 1, failed again 0" in out and "warnings 1" in out

    # Still broken: fails again and stays open with its new reasons, then is discarded.
    out = cli(estate, "quarantine", "replay", str(unknown.id), code=1)
    assert "failed again 1" in out and "unknown item 'Z' @ $.item_id" in out
    with store_of(estate) as store:  # the item-location rule warns now: only the reference still rejects
        assert store.quarantine(ids=[unknown.id])[0].reasons == [
            "unknown item 'Z' @ $.item_id (system erp-na, key Z|P1|)"]
    cli(estate, "quarantine", "discard", str(unknown.id), "--note", "item Z was never released")

    with store_of(estate) as store:
        fixed = store.get("inventory_balance", "B|P1|")
        assert fixed is not None and json.loads(fixed.payload or b"")["on_hand"]["value"] == "5"
        assert store.get("inventory_balance", "A|P2|") is not None
        assert store.quarantine() == []
        assert store.quarantine(status=None, ids=[negative.id])[0].status is QuarantineStatus.REPLAYED
        assert [e.action for e in store.quarantine_events(negative.id)] == [
            QuarantineAction.CREATED, QuarantineAction.EDITED, QuarantineAction.REPLAYED]
        edited = store.quarantine_events(negative.id)[1]
        assert edited.detail == "ON_HAND: '-5' -> '5'"
        assert [e.action for e in store.quarantine_events(invalid.id)] == [
            QuarantineAction.CREATED, QuarantineAction.REPLAYED]
        assert store.quarantine(status=None, ids=[unknown.id])[0].status is QuarantineStatus.DISCARDED
        assert [e.action for e in store.quarantine_events(unknown.id)] == [
            QuarantineAction.CREATED, QuarantineAction.REPLAY_FAILED, QuarantineAction.DISCARDED]
    shown = cli(estate, "quarantine", "show", str(negative.id))
    assert "replayed" in shown and "edited" in shown


def test_replay_without_a_selection_is_refused(estate: Path) -> None:
    out = cli(estate, "quarantine", "replay", code=2)
    assert "--all" in out
    cli(estate, "quarantine", "show", "12345", code=1)


def test_a_replay_never_undoes_a_newer_version_unless_forced(estate: Path) -> None:
    cli(estate, "sync", "locations-in", "items-in", "item-locations-in", "inventory-in")
    with store_of(estate) as store:
        negative = entry_with(store, "on_hand must be ≥ 0")
    (estate.parent / "drop" / "inventory_2.csv").write_text(
        "ITEM_NO,SITE,ON_HAND,UOM,SNAPSHOT_UTC\nB,P1,7,EA,2025-03-02T06:00:00Z\n")
    cli(estate, "sync", "inventory-in")
    cli(estate, "quarantine", "edit", str(negative.id), "--set", "ON_HAND=5")

    out = cli(estate, "quarantine", "replay", str(negative.id), code=1)
    assert "has a newer version" in out
    with store_of(estate) as store:
        newer = store.get("inventory_balance", "B|P1|")
        assert newer is not None and json.loads(newer.payload or b"")["on_hand"]["value"] == "7"
        assert store.quarantine(ids=[negative.id])[0].reasons[0].startswith("inventory_balance B|P1| has a newer")

    cli(estate, "quarantine", "replay", str(negative.id), "--force")
    with store_of(estate) as store:
        row = store.get("inventory_balance", "B|P1|")
        assert row is not None and row.version == 2 and json.loads(row.payload or b"")["on_hand"]["value"] == "5"
        assert [e.action for e in store.quarantine_events(negative.id)] == [
            QuarantineAction.CREATED, QuarantineAction.EDITED, QuarantineAction.REPLAY_FAILED,
            QuarantineAction.REPLAYED]


def test_edit_and_replay_refuse_what_they_cannot_do(estate: Path) -> None:
    cli(estate, "sync", "locations-in", "items-in", "item-locations-in", "inventory-in")
    with store_of(estate) as store:
        negative = entry_with(store, "on_hand must be ≥ 0")
    assert "expected FIELD=VALUE" in cli(estate, "quarantine", "edit", str(negative.id), "--set", "ON_HAND", code=2)
    cli(estate, "quarantine", "discard", str(negative.id))
    assert "is discarded, not open" in cli(estate, "quarantine", "edit", str(negative.id), "--set", "X=1", code=1)
    out = cli(estate, "quarantine", "replay", str(negative.id), code=1)
    assert "skipped, entry is discarded, not open" in out


def test_every_stored_record_keeps_its_mapping_version_and_raw_record(estate: Path) -> None:
    cli(estate, "sync", "locations-in", "items-in", "item-locations-in", "inventory-in")
    mappings = {"location": "locations", "item": "items", "item_location": "item-locations",
                "inventory_balance": "inventory"}
    with store_of(estate) as store:
        for entity, mapping in mappings.items():
            rows = list(store.current(entity))
            assert rows
            for row in rows:
                (change,) = [c for c in store.history(entity, row.key) if c.seq == row.last_seq]
                assert change.lineage.mapping_version == f"{mapping}@1" and change.lineage.source_system == "erp-na"
            assert [s.key for s in store.sources(entity)] == [row.key for row in rows]
        negative = entry_with(store, "on_hand must be ≥ 0")
        assert negative.mapping_version == "inventory@1"

    assert "mapping  inventory@1" in cli(estate, "quarantine", "show", str(negative.id))
    shown = cli(estate, "record", "show", "inventory_balance", "A|P1|")
    assert '"ON_HAND":"10"' in shown and "inventory_1.csv:2" in shown and "inventory@1" in shown
    assert "version 1, live" in shown

    cli(estate, "quarantine", "edit", str(negative.id), "--set", "ON_HAND=5")
    cli(estate, "quarantine", "replay", str(negative.id))
    shown = cli(estate, "record", "show", "inventory_balance", "B|P1|")
    assert '"ON_HAND":"5"' in shown and "replay-" in shown and "inventory@1" in shown
    assert "no inventory_balance 'Q|P1|'" in cli(estate, "record", "show", "inventory_balance", "Q|P1|", code=1)
