"""Canonical records → an outbound flow with an outbound mapping → a real SQLite table of the plant's own shape.

The plant database names items its own way (``MAT-FG-1``): an inbound flow reads its material table and links each
material to the canonical item in the cross-reference. Production orders arrive from the MES; the outbound flow
writes them into the plant's order table with the plant's column names, its plant codes and status codes (through
the inverse code maps) and its material numbers (through the cross-reference). An order of an item the plant does
not know yet is dead-lettered with the reason at its path; once the plant has the material, replaying the dead
letter delivers it. Sending again changes nothing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.fixtures import cli, estate_with, store_of

ESTATE = """\
version: 1
name: plant
store: sqlite:///.syncfabric/syncfabric.db
systems:
  mes: {kind: files, connection: {folder: drop}}
  plant-db:
    kind: sql
    connection:
      url: sqlite:///plant.db
      sources: {materials: {table: materials, key: [MATNR]}}
      targets: {production_order: {table: orders, key: [AUFNR]}}
code_maps:
  order-status: {values: {REL: released, TECO: completed}}
  plants: {values: {"1000": P1, "2000": P2}}
mappings:
  production-orders:
    system: mes
    entity: production_order
    fields:
      order_id: AUFNR
      item_id: MATNR
      location_id: WERKS
      quantity: {value: GAMNG, unit: GMEIN}
      start_date: GSTRP
      due_date: GLTRP
      status: {from: STAT, code_map: order-status}
  plant-materials:
    system: plant-db
    entity: item
    fields:
      item_id: {from: MATNR, xref: {entity: item, derive: {strip_prefix: "MAT-"}}}
      base_unit: MEINS
  orders-to-plant:
    system: plant-db
    entity: production_order
    direction: outbound
    fields:
      AUFNR: order_id
      MATNR: {from: item_id, xref: {entity: item}}
      WERKS: {from: location_id, code_map: plants}
      GAMNG: quantity.value
      GMEIN: quantity.unit
      GSTRP: start_date
      STAT: {from: status, code_map: order-status}
      SOURCE: {const: syncfabric}
flows:
  orders-in: {direction: inbound, system: mes, entities: [production_order], source: "orders_*.csv",
              mapping: production-orders}
  materials-in: {direction: inbound, system: plant-db, entities: [item], mode: full, source: materials,
                 mapping: plant-materials}
  orders-out: {direction: outbound, system: plant-db, entities: [production_order], mode: changes,
               mapping: orders-to-plant}
"""

ORDERS = (
    "AUFNR,MATNR,WERKS,GAMNG,GMEIN,GSTRP,GLTRP,STAT\n"
    "PO-1,FG-1,P1,24,EA,2025-03-03,2025-03-07,REL\n"
    "PO-2,FG-1,P2,2,EA,2025-03-03,2025-03-07,TECO\n"
    "PO-3,FG-2,P1,5,EA,2025-03-04,2025-03-08,REL\n"
)


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    path = estate_with(tmp_path, ESTATE, {"orders_1.csv": ORDERS})
    with sqlite3.connect(tmp_path / "plant.db") as db:
        db.execute("CREATE TABLE materials (MATNR TEXT PRIMARY KEY, MEINS TEXT NOT NULL)")
        db.execute("INSERT INTO materials VALUES ('MAT-FG-1', 'EA')")
        db.execute("CREATE TABLE orders (AUFNR TEXT PRIMARY KEY, MATNR TEXT NOT NULL, WERKS TEXT NOT NULL, "
                   "GAMNG NUMERIC NOT NULL, GMEIN TEXT, GSTRP TEXT, STAT TEXT, SOURCE TEXT)")
    return path


def orders(estate: Path) -> dict[str, tuple]:
    with sqlite3.connect(estate.parent / "plant.db") as db:
        return {row[0]: row[1:] for row in db.execute("SELECT * FROM orders ORDER BY AUFNR")}


def test_orders_reach_the_plant_table_in_its_own_shape_codes_and_ids(estate: Path) -> None:
    cli(estate, "sync", "materials-in")
    cli(estate, "sync", "orders-in")
    cli(estate, "sync", "orders-out")

    assert orders(estate) == {
        "PO-1": ("MAT-FG-1", "1000", 24, "EA", "2025-03-03", "REL", "syncfabric"),
        "PO-2": ("MAT-FG-1", "2000", 2, "EA", "2025-03-03", "TECO", "syncfabric"),
    }
    with store_of(estate) as store:
        (letter,) = store.dead_letters(flow="orders-out")
        assert letter.record_key == "PO-3"
        assert letter.reason == ("outbound mapping orders-to-plant@1+order-status@1+plants@1 failed: no plant-db id "
                                 "for canonical item 'FG-2' in the cross-reference @ $.MATNR (field item_id)")
        assert b'"item_id":"FG-2"' in letter.payload.encode()  # the canonical record is kept, to be mapped again

    # The plant gets the material; its inbound flow links it; the dead letter is replayed and delivered.
    with sqlite3.connect(estate.parent / "plant.db") as db:
        db.execute("INSERT INTO materials VALUES ('MAT-FG-2', 'EA')")
    cli(estate, "sync", "materials-in")
    cli(estate, "deadletter", "replay", "--all", "--yes")
    assert orders(estate)["PO-3"] == ("MAT-FG-2", "1000", 5, "EA", "2025-03-04", "REL", "syncfabric")
    with store_of(estate) as store:
        assert store.dead_letters(flow="orders-out") == []
        assert [entry.status.value for entry in store.dead_letters(flow="orders-out", status=None)] == ["replayed"]

    # A changed order updates its own row (no row added); the other rows stay as they were.
    before = orders(estate)
    (estate.parent / "drop" / "orders_2.csv").write_text(ORDERS.replace("PO-1,FG-1,P1,24", "PO-1,FG-1,P1,30"))
    cli(estate, "sync", "orders-in")
    cli(estate, "sync", "orders-out")
    after = orders(estate)
    assert after["PO-1"][2] == 30 and {key: row for key, row in after.items() if key != "PO-1"} == {
        key: row for key, row in before.items() if key != "PO-1"}
