"""Two systems feed one entity: a complete snapshot of one of them deletes only what that flow brought."""

from __future__ import annotations

from pathlib import Path

from syncfabric.config import load_estate
from syncfabric.flows.runtime import Runtime

ESTATE = """\
version: 1
name: two-sources
store: sqlite:///.syncfabric/syncfabric.db
systems:
  erp-a: {kind: files, connection: {folder: drop/a}}
  erp-b: {kind: files, connection: {folder: drop/b}}
mappings:
  a-items: {system: erp-a, entity: item, fields: {item_id: ITEM, description: TEXT, base_unit: {const: EA}}}
  b-items: {system: erp-b, entity: item, fields: {item_id: ITEM, description: TEXT, base_unit: {const: EA}}}
flows:
  a-in: {direction: inbound, system: erp-a, entities: [item], mode: full, source: "items_*.csv", mapping: a-items}
  b-in: {direction: inbound, system: erp-b, entities: [item], mode: full, source: "items_*.csv", mapping: b-items}
"""


def drop(folder: Path, name: str, *items: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("ITEM,TEXT\n" + "".join(f"{item},item {item}\n" for item in items))


def test_a_snapshot_deletes_its_own_missing_keys_and_leaves_the_other_systems(tmp_path: Path) -> None:
    (tmp_path / "estate.yaml").write_text(ESTATE)
    drop(tmp_path / "drop" / "a", "items_1.csv", "A1", "A2")
    drop(tmp_path / "drop" / "b", "items_1.csv", "B1", "B2")
    with Runtime(load_estate(tmp_path / "estate.yaml")) as runtime:
        runtime.run_flow("a-in")
        runtime.run_flow("b-in")
        assert sorted(runtime.store.live_keys("item")) == ["A1", "A2", "B1", "B2"]
        drop(tmp_path / "drop" / "a", "items_2.csv", "A1")
        result = runtime.run_flow("a-in")
        assert result.deleted == 1
        assert sorted(runtime.store.live_keys("item")) == ["A1", "B1", "B2"]
