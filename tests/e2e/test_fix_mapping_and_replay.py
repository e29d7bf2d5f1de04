"""The issue's "done when", as a new user would try it, through the command line against real files and the
SQLite store.

A plant's production order arrives with an unknown unit (CRATE), an unmapped status code (DLV) and a negative
quantity: it is quarantined with all three reasons at their paths. The user adds the missing conversion and code
to the estate file and corrects the quantity; ``mapping diff`` shows, before anything is applied, that the stored
orders do not change and that the quarantined one would now be accepted, with its fields; ``quarantine replay
--reason ...`` delivers it, and its lineage names the new mapping version.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syncfabric.store import QuarantineAction
from tests.fixtures import cli, estate_with, store_of

ESTATE = """\
version: 1
name: plant
store: sqlite:///.syncfabric/syncfabric.db
systems:
  mes: {kind: files, connection: {folder: drop}}
units:
  items:
    FG-1: {base_unit: EA, conversions: [{from: BOX, to: EA, factor: 12}]}
code_maps:
  order-status: {values: {REL: released, TECO: completed}}
mappings:
  production-orders:
    system: mes
    entity: production_order
    fields:
      order_id: AUFNR
      item_id: MATNR
      location_id: WERKS
      quantity: {value: GAMNG, unit: GMEIN, convert_to: base_unit}
      start_date: GSTRP
      due_date: GLTRP
      status: {from: STAT, code_map: order-status}
flows:
  orders-in: {direction: inbound, system: mes, entities: [production_order], source: "orders_*.csv",
              mapping: production-orders}
"""

ORDERS = (
    "AUFNR,MATNR,WERKS,GAMNG,GMEIN,GSTRP,GLTRP,STAT\n"
    "PO-1,FG-1,P1,24,EA,2025-03-03,2025-03-07,REL\n"
    "PO-2,FG-1,P1,2,BOX,2025-03-03,2025-03-07,TECO\n"
    "PO-3,FG-1,P1,-5,CRATE,2025-03-03,2025-03-07,DLV\n"
)

FIXED = ESTATE.replace(
    "FG-1: {base_unit: EA, conversions: [{from: BOX, to: EA, factor: 12}]}",
    "FG-1: {base_unit: EA, conversions: [{from: BOX, to: EA, factor: 12}, {from: CRATE, to: EA, factor: 10}]}",
).replace(
    "order-status: {values: {REL: released, TECO: completed}}",
    "order-status: {version: 2, values: {REL: released, TECO: completed, DLV: completed}}",
).replace("units:\n", "units:\n  units: {CRATE: {decimals: 0}}\n")


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    return estate_with(tmp_path, ESTATE, {"orders_1.csv": ORDERS})


def test_a_record_with_three_problems_is_fixed_in_the_estate_previewed_and_replayed(estate: Path) -> None:
    cli(estate, "sync", "orders-in")
    with store_of(estate) as store:
        assert store.count("production_order") == 2
        (entry,) = store.quarantine()
        assert entry.record_key == "PO-3" and entry.location.endswith("orders_1.csv:4")
        assert sorted(entry.reasons) == sorted([
            "unknown unit 'CRATE' @ $.quantity.unit (column GMEIN)",
            "unmapped code 'DLV' in code map 'order-status' (version 1) @ $.status (column STAT)",
            "quantity must be > 0, got -5 CRATE @ $.quantity",
        ])
        before = {row.key: row.payload for row in store.current("production_order")}
    shown = cli(estate, "quarantine", "show", str(entry.id))
    assert "unknown unit 'CRATE' @ $.quantity.unit" in shown and "production-orders@1+order-status@1+units@" in shown

    # Nothing changed yet: the dry run finds nothing to do.
    out = cli(estate, "mapping", "diff")
    assert "0 stored record(s) would change, 0 would be rejected; 0 quarantined record(s) would be accepted" in out

    # The user adds the missing conversion and code: the mapping fix clears two reasons, the quantity remains.
    estate.write_text(FIXED)
    out = cli(estate, "mapping", "diff")
    assert "would still reject" in out and "quantity must be > 0, got -50 EA @ $.quantity" in out
    assert "0 quarantined record(s) would be accepted" in out

    # The quantity is a data error at the source: corrected in the quarantined record itself.
    cli(estate, "quarantine", "edit", str(entry.id), "--set", "GAMNG=5")
    out = cli(estate, "mapping", "diff", "--check", code=1)
    assert "0 stored record(s) would change, 0 would be rejected; 1 quarantined record(s) would be accepted" in out
    rows = {tuple(cell.strip() for cell in line.split("│")[2:7]) for line in out.splitlines() if "PO-3" in line}
    assert ("PO-3 (quarantine 1)", "would accept", "$.quantity.value", "—", "50") in rows
    assert ("PO-3 (quarantine 1)", "would accept", "$.quantity.unit", "—", "EA") in rows
    assert ("PO-3 (quarantine 1)", "would accept", "$.status", "—", "completed") in rows
    assert "production-orders@1+order-status@2+units@" in out  # the version now, next to the stored one
    with store_of(estate) as store:  # a dry run: nothing was written
        assert store.count("production_order") == 2
        assert {row.key: row.payload for row in store.current("production_order")} == before
        assert [e.action for e in store.quarantine_events(entry.id)] == [QuarantineAction.CREATED,
                                                                          QuarantineAction.EDITED]

    out = cli(estate, "quarantine", "replay", "--reason", "unknown unit 'CRATE'")
    assert "replayed 1, failed again 0" in out and "inserted 1" in out
    with store_of(estate) as store:
        row = store.get("production_order", "PO-3")
        assert row is not None
        payload = json.loads(row.payload or b"")
        assert payload["quantity"] == {"value": "50", "unit": "EA"} and payload["status"] == "completed"
        (change,) = store.history("production_order", "PO-3")
        assert change.lineage.mapping_version.startswith("production-orders@1+order-status@2+units@")
        assert store.quarantine() == []
    out = cli(estate, "mapping", "diff", "--check")
    assert "0 stored record(s) would change, 0 would be rejected; 0 quarantined record(s) would be accepted" in out
