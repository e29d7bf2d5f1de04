"""Three regional ERPs know the same products by different numbers, in different units and status codes. Through
their CSV exports and one estate they converge on one canonical item set: the same canonical keys, quantities in
each item's base unit, canonical statuses and UTC timestamps, with a cross-reference entry per system.

    EU (SAP-like)   MAT-100-200   ST (each), BOX        status 10 / 20 / 90      local time of the plant
    NA              100200        BOX of 12             status A / B / O         UTC
    APAC            I100200       DZ (dozen), EA        status ACT / HLD / OBS   local time of Singapore
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from syncfabric.config import load_estate
from syncfabric.flows.impact import mapping_impact
from syncfabric.flows.runtime import Runtime
from syncfabric.mapping import functions


@functions.register("squeeze_spaces")
def squeeze_spaces(text: str) -> str:
    return " ".join(str(text).split())


ESTATE = """\
version: 1
name: three-erps
store: sqlite:///.syncfabric/syncfabric.db
systems:
  erp-eu: {kind: files, connection: {folder: drop/eu, delimiter: ";"}}
  erp-na: {kind: files, connection: {folder: drop/na}}
  erp-apac: {kind: files, connection: {folder: drop/apac}}

units:
  units:
    EA: {decimals: 0}
    KG: {decimals: 3, rounding: half_even}
  conversions:
    - {from: DZ, to: EA, factor: 12}
  items:
    "100200": {base_unit: EA, conversions: [{from: BOX, to: EA, factor: 12}, {from: PAL, to: EA, factor: 480}]}
    "100300": {base_unit: EA, conversions: [{from: BOX, to: EA, factor: 6}]}
    "200100": {base_unit: KG, conversions: [{from: EA, to: KG, factor: "2.5"}]}

code_maps:
  plants: {version: 2, values: {"1000": DE-HAM, CHI: US-CHI, SG01: SG-SIN}}
  eu-units: {values: {ST: EA, KAR: BOX, KG: KG}}
  eu-item-status: {values: {"10": active, "20": blocked, "90": obsolete}}
  na-item-status: {values: {A: active, B: blocked, O: obsolete}}
  apac-item-status: {values: {ACT: active, HLD: blocked, OBS: obsolete}}

mappings:
  eu-locations:
    system: erp-eu
    entity: location
    fields:
      location_id: {from: WERKS, code_map: plants}
      name: NAME1
      kind: {const: plant}
      time_zone: TZONE
  eu-items:
    system: erp-eu
    entity: item
    fields:
      item_id: {from: MATNR, xref: {entity: item, derive: {strip_prefix: "MAT-", remove: "-"}}}
      description: {concat: [MAKTX, GROES], sep: " "}
      base_unit: {from: MEINS, code_map: eu-units}
      status: {from: MSTAE, code_map: eu-item-status, default: "10"}
  eu-inventory:
    system: erp-eu
    entity: inventory_balance
    fields:
      item_id: {from: MATNR, xref: {entity: item, derive: {strip_prefix: "MAT-", remove: "-"}}}
      location_id: {from: WERKS, code_map: plants}
      on_hand: {value: LABST, unit: {from: MEINS, code_map: eu-units}, convert_to: base_unit}
      as_of: {from: STAMP, datetime: {format: "%d.%m.%Y %H:%M", location: {from: WERKS, code_map: plants}}}

  na-locations:
    system: erp-na
    entity: location
    fields: {location_id: {from: PLANT, code_map: plants}, name: PLANT_NAME, kind: {const: plant}, time_zone: TZ}
  na-items:
    system: erp-na
    entity: item
    fields:
      item_id: {from: ITEM, xref: {entity: item}}
      description: DESCRIPTION
      base_unit: BASE_UOM
      status: {from: STATUS, code_map: na-item-status}
  na-inventory:
    system: erp-na
    entity: inventory_balance
    fields:
      item_id: {from: ITEM, xref: {entity: item}}
      location_id: {from: PLANT, code_map: plants}
      on_hand: {value: QTY, unit: UOM, convert_to: base_unit}
      as_of: {from: AS_OF_UTC, datetime: {}}

  apac-locations:
    system: erp-apac
    entity: location
    fields: {location_id: {from: SITE, code_map: plants}, name: SITE_NAME, kind: {const: plant}, time_zone: ZONE}
  apac-items:
    system: erp-apac
    entity: item
    fields:
      item_id: {from: CODE, xref: {entity: item, derive: {strip_prefix: I}}}
      description: {function: squeeze_spaces, args: [TEXT]}
      base_unit: BASE
      status: {from: STAT, code_map: apac-item-status}
  apac-inventory:
    system: erp-apac
    entity: inventory_balance
    fields:
      item_id: {from: CODE, xref: {entity: item, derive: {strip_prefix: I}}}
      location_id: {from: SITE, code_map: plants}
      on_hand: {value: STOCK, unit: UNIT, convert_to: base_unit}
      as_of: {from: TIME, datetime: {format: "%Y/%m/%d %H:%M", timezone: Asia/Singapore}}

flows:
  eu-locations-in: {direction: inbound, system: erp-eu, entities: [location], source: "werks_*.csv",
                    mapping: eu-locations}
  eu-items-in: {direction: inbound, system: erp-eu, entities: [item], source: "mara_*.csv", mapping: eu-items}
  eu-inventory-in: {direction: inbound, system: erp-eu, entities: [inventory_balance], source: "mard_*.csv",
                    mapping: eu-inventory}
  na-locations-in: {direction: inbound, system: erp-na, entities: [location], source: "plants_*.csv",
                    mapping: na-locations}
  na-items-in: {direction: inbound, system: erp-na, entities: [item], source: "items_*.csv", mapping: na-items}
  na-inventory-in: {direction: inbound, system: erp-na, entities: [inventory_balance], source: "stock_*.csv",
                    mapping: na-inventory}
  apac-locations-in: {direction: inbound, system: erp-apac, entities: [location], source: "sites_*.csv",
                      mapping: apac-locations}
  apac-items-in: {direction: inbound, system: erp-apac, entities: [item], source: "items_*.csv",
                  mapping: apac-items}
  apac-inventory-in: {direction: inbound, system: erp-apac, entities: [inventory_balance], source: "onhand_*.csv",
                      mapping: apac-inventory}
"""

FILES = {
    "eu/werks_1.csv": "WERKS;NAME1;TZONE\n1000;Hamburg;Europe/Berlin\n",
    "eu/mara_1.csv": (
        "MATNR;MAKTX;GROES;MEINS;MSTAE\n"
        "MAT-100-200;Valve;DN50;ST;10\n"
        "MAT-100-300;Gasket;DN50;ST;20\n"
        "MAT-200-100;Steel;sheet;KG;\n"
    ),
    "eu/mard_1.csv": (
        "MATNR;WERKS;LABST;MEINS;STAMP\n"
        "MAT-100-200;1000;2;KAR;01.03.2025 07:00\n"
        "MAT-100-300;1000;30;ST;01.03.2025 07:00\n"
        "MAT-200-100;1000;12.5;KG;01.03.2025 07:00\n"
    ),
    "na/plants_1.csv": "PLANT,PLANT_NAME,TZ\nCHI,Chicago,America/Chicago\n",
    "na/items_1.csv": (
        "ITEM,DESCRIPTION,BASE_UOM,STATUS\n"
        "100200,Valve DN50,EA,A\n"
        "100300,Gasket DN50,EA,B\n"
        "200100,Steel sheet,KG,A\n"
    ),
    "na/stock_1.csv": (
        "ITEM,PLANT,QTY,UOM,AS_OF_UTC\n"
        "100200,CHI,2,BOX,2025-03-01T06:00:00Z\n"
        "100300,CHI,5,BOX,2025-03-01T06:00:00Z\n"
        "200100,CHI,12.5,KG,2025-03-01T06:00:00Z\n"
    ),
    "apac/sites_1.csv": "SITE,SITE_NAME,ZONE\nSG01,Singapore,Asia/Singapore\n",
    "apac/items_1.csv": (
        "CODE,TEXT,BASE,STAT\n"
        "I100200,  Valve   DN50 ,EA,ACT\n"
        "I100300,Gasket DN50,EA,HLD\n"
        "I200100,Steel sheet,KG,ACT\n"
    ),
    "apac/onhand_1.csv": (
        "CODE,SITE,STOCK,UNIT,TIME\n"
        "I100200,SG01,2,DZ,2025/03/01 14:00\n"
        "I100300,SG01,30,EA,2025/03/01 14:00\n"
        "I200100,SG01,5,EA,2025/03/01 14:00\n"
    ),
}

SIX_UTC = dt.datetime(2025, 3, 1, 6, tzinfo=dt.UTC)
SYSTEMS = ("erp-eu", "erp-na", "erp-apac")
PREFIX = {"erp-eu": "eu", "erp-na": "na", "erp-apac": "apac"}


@pytest.fixture
def runtime(tmp_path: Path):
    (tmp_path / "estate.yaml").write_text(ESTATE)
    write_files(tmp_path, FILES)
    with Runtime(load_estate(tmp_path / "estate.yaml", environ={})) as opened:
        yield opened


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / "drop" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def run(runtime: Runtime, kind: str) -> dict[str, object]:
    return {system: runtime.run_flow(f"{PREFIX[system]}-{kind}-in") for system in SYSTEMS}


def payload(runtime: Runtime, entity: str, key: str) -> dict:
    row = runtime.store.get(entity, key)
    assert row is not None and row.payload is not None, f"{entity} {key} not stored"
    return msgspec.json.decode(row.payload)


def test_three_erps_converge_on_one_canonical_item_set(runtime: Runtime) -> None:
    run(runtime, "locations")
    items = run(runtime, "items")
    inventory = run(runtime, "inventory")

    assert [result.quarantined for result in (*items.values(), *inventory.values())] == [0] * 6
    assert items["erp-eu"].inserted == 3
    assert items["erp-na"].unchanged == 3 and items["erp-apac"].unchanged == 3  # same canonical content
    assert [row.key for row in runtime.store.current("item")] == ["100200", "100300", "200100"]
    valve = payload(runtime, "item", "100200")
    assert (valve["description"], valve["base_unit"], valve["status"]) == ("Valve DN50", "EA", "active")
    assert payload(runtime, "item", "100300")["status"] == "blocked"

    ids = {"erp-eu": ["MAT-100-200", "MAT-100-300", "MAT-200-100"], "erp-na": ["100200", "100300", "200100"],
           "erp-apac": ["I100200", "I100300", "I200100"]}
    for system, external in ids.items():
        for external_id, key in zip(external, ["100200", "100300", "200100"], strict=True):
            assert runtime.store.xref(system, "item", external_id) == key
            assert runtime.store.xref_external(system, "item", key) == external_id

    on_hand = {(row.key.split("|")[0], row.key.split("|")[1]): payload(runtime, "inventory_balance", row.key)
               for row in runtime.store.current("inventory_balance")}
    expected = {"100200": ("24", "EA"), "100300": ("30", "EA"), "200100": ("12.5", "KG")}
    for plant in ("DE-HAM", "US-CHI", "SG-SIN"):
        for item, (value, unit) in expected.items():
            quantity = on_hand[(item, plant)]["on_hand"]
            assert (Decimal(quantity["value"]), quantity["unit"]) == (Decimal(value), unit), (item, plant)
            assert dt.datetime.fromisoformat(on_hand[(item, plant)]["as_of"]) == SIX_UTC

    # Each item's kept raw record is the one behind its current version (EU wrote it; NA and APAC changed nothing),
    # and the estate as it is changes nothing: mapping diff finds every record unchanged.
    assert {(s.key, s.flow) for s in runtime.store.sources("item")} == {
        ("100200", "eu-items-in"), ("100300", "eu-items-in"), ("200100", "eu-items-in")}
    impact = mapping_impact(runtime.store, runtime.estate)
    stored = sum(runtime.store.count(entity) for entity in ("location", "item", "inventory_balance"))
    assert sum(f.checked for f in impact.flows) == stored == 3 + 3 + 9
    assert all(f.changed == f.rejected == f.accepted == 0 for f in impact.flows) and impact.unchecked == {}


def test_lineage_names_the_code_maps_and_unit_table_used(runtime: Runtime) -> None:
    run(runtime, "locations")
    run(runtime, "items")
    run(runtime, "inventory")

    [change] = [c for c in runtime.store.changes(0, entities=["inventory_balance"]) if c.key == "100200|DE-HAM|"]
    version = change.lineage.mapping_version
    assert version.startswith("eu-inventory@1+eu-units@1+plants@2+units@")


def test_unmapped_codes_missing_conversions_and_xref_conflicts_are_quarantined(
    runtime: Runtime, tmp_path: Path
) -> None:
    run(runtime, "locations")
    run(runtime, "items")
    write_files(tmp_path, {
        "na/items_2.csv": "ITEM,DESCRIPTION,BASE_UOM,STATUS\n100200,Valve DN50,EA,X\n",
        "na/stock_2.csv": "ITEM,PLANT,QTY,UOM,AS_OF_UTC\n200100,CHI,1,BOX,2025-03-01T06:00:00Z\n"
                          "100200,DAL,1,EA,2025-03-01T06:00:00Z\n",
        "eu/mara_2.csv": "MATNR;MAKTX;GROES;MEINS;MSTAE\nMAT-1002-00;Valve;DN50;ST;10\n",
    })

    assert runtime.run_flow("na-items-in").quarantined == 1
    assert runtime.run_flow("na-inventory-in").quarantined == 2
    assert runtime.run_flow("eu-items-in").quarantined == 1

    reasons = {entry.flow + ":" + entry.record_key: entry.reasons for entry in runtime.store.quarantine()}
    assert reasons["na-items-in:100200"] == [
        "unmapped code 'X' in code map 'na-item-status' (version 1) @ $.status (column STATUS)"]
    assert reasons["na-inventory-in:200100|US-CHI|"] == [
        "no conversion from 'BOX' to 'KG' for item '200100' @ $.on_hand.unit (column UOM)"]
    assert reasons["na-inventory-in:100200|?|"] == [
        "unmapped code 'DAL' in code map 'plants' (version 2) @ $.location_id (column PLANT)"]
    assert reasons["eu-items-in:100200"] == [
        "xref conflict: canonical item '100200' is already linked to erp-eu id 'MAT-100-200', not 'MAT-1002-00'"]
    assert runtime.store.xref("erp-eu", "item", "MAT-1002-00") is None
