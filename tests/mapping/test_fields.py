"""Field maps: from a system's raw record to a canonical one, with every problem reported where it is."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from syncfabric.config.schema import Mapping
from syncfabric.errors import RecordError
from syncfabric.mapping import FieldMap
from syncfabric.model import Quantity
from syncfabric.model.master import Item
from syncfabric.model.transactions import InventoryBalance

INVENTORY = FieldMap("legacy-inventory", Mapping(system="erp", entity="inventory_balance", version=3, fields={
    "item_id": "ITEM_NO",
    "location_id": "SITE",
    "lot": "LOT",
    "on_hand": {"value": "ON_HAND", "unit": "UOM"},
    "allocated": {"value": "ALLOCATED", "unit": "UOM"},
    "as_of": "SNAPSHOT_UTC",
}))
ITEMS = FieldMap("legacy-items", Mapping(system="erp", entity="item", fields={
    "item_id": "ITEM_NO", "description": "DESCRIPTION", "base_unit": "UOM", "item_type": "ITEM_TYPE",
    "unit_cost": "UNIT_COST", "lot_controlled": "LOT_CONTROLLED",
}))


def inventory_row(**changes: str) -> dict[str, Any]:
    row = {"ITEM_NO": "RM-1", "SITE": "P100", "LOT": "", "ON_HAND": "12.500", "UOM": "KG", "ALLOCATED": "2",
           "SNAPSHOT_UTC": "2026-11-02T18:00:00Z"}
    row.update(changes)
    return row


def problems(field_map: FieldMap, raw: dict[str, Any]) -> list[str]:
    with pytest.raises(RecordError) as raised:
        field_map.apply(raw)
    return [str(problem) for problem in raised.value.problems]


def test_a_good_row_maps_to_a_canonical_record() -> None:
    record = INVENTORY.apply(inventory_row())

    assert record == InventoryBalance(
        item_id="RM-1", location_id="P100", lot="", on_hand=Quantity(value=Decimal("12.500"), unit="KG"),
        allocated=Quantity(value=Decimal(2), unit="KG"), as_of=dt.datetime(2026, 11, 2, 18, tzinfo=dt.UTC))
    assert record.key == "RM-1|P100|"
    assert INVENTORY.system == "erp" and INVENTORY.version.startswith("legacy-inventory@3")


def test_every_problem_of_a_record_is_reported_with_its_path_and_source_column() -> None:
    raw = inventory_row(ITEM_NO="", ON_HAND="12x", UOM="CRATE")

    found = problems(INVENTORY, raw)

    assert len(found) == 4, found
    assert "missing required field @ $.item_id (column ITEM_NO)" in found
    [decimal] = [problem for problem in found if "$.on_hand.value" in problem]
    assert "decimal" in decimal and "'12x'" in decimal
    assert decimal.endswith("@ $.on_hand.value (column ON_HAND)")
    assert "unknown unit 'CRATE' @ $.on_hand.unit (column UOM)" in found
    assert "unknown unit 'CRATE' @ $.allocated.unit (column UOM)" in found


def test_the_error_carries_the_key_as_far_as_it_is_known() -> None:
    with pytest.raises(RecordError) as raised:
        INVENTORY.apply(inventory_row(ON_HAND="lots"))
    assert raised.value.key == "RM-1|P100|"

    with pytest.raises(RecordError) as raised:
        INVENTORY.apply(inventory_row(UOM="CRATE"))  # the record itself is well formed
    assert raised.value.key == "RM-1|P100|"


def test_a_wrong_literal_names_the_field_the_column_and_the_value() -> None:
    [problem] = problems(ITEMS, {"ITEM_NO": "A", "UOM": "EA", "ITEM_TYPE": "gizmo"})

    assert "'gizmo'" in problem and problem.endswith("@ $.item_type (column ITEM_TYPE)")


def test_a_value_out_of_bounds_is_located_at_its_field() -> None:
    assert problems(ITEMS, {"ITEM_NO": "A", "UOM": "EA", "UNIT_COST": "-1"}) == [
        "unit_cost must be >= 0, got -1 @ $.unit_cost (column UNIT_COST)"]


def test_checks_the_model_runs_after_decoding_are_reported_with_the_other_problems() -> None:
    found = problems(ITEMS, {"ITEM_NO": "A", "UOM": "EA", "ITEM_TYPE": "gizmo", "UNIT_COST": "-1"})
    assert len(found) == 2, found
    assert "unit_cost must be >= 0, got -1 @ $.unit_cost (column UNIT_COST)" in found

    found = problems(INVENTORY, inventory_row(ITEM_NO="", SNAPSHOT_UTC="2026-11-02T20:00:00+02:00"))
    assert len(found) == 2, found
    assert "missing required field @ $.item_id (column ITEM_NO)" in found
    assert any("UTC" in p and p.endswith("@ $.as_of (column SNAPSHOT_UTC)") for p in found)


def test_constants_are_used_as_they_are() -> None:
    field_map = FieldMap("items", Mapping(system="erp", entity="item", fields={
        "item_id": "ITEM_NO", "base_unit": {"const": "EA"}, "item_type": {"const": "finished"},
        "lot_controlled": {"const": True},
    }))

    record = field_map.apply({"ITEM_NO": "FG-1", "UOM": "KG"})

    assert isinstance(record, Item)
    assert (record.base_unit, record.item_type, record.lot_controlled) == ("EA", "finished", True)


def test_dotted_paths_read_nested_source_records() -> None:
    field_map = FieldMap("inv-api", Mapping(system="api", entity="inventory_balance", fields={
        "item_id": "material.number",
        "location_id": "stock.plant.code",
        "on_hand": {"value": "stock.quantity.amount", "unit": "stock.quantity.uom"},
        "as_of": "meta.at",
    }))
    raw = {"material": {"number": "RM-7"}, "stock": {"plant": {"code": "P200"},
                                                      "quantity": {"amount": 4, "uom": "EA"}},
           "meta": {"at": "2026-11-02T18:00:00Z"}}

    record = field_map.apply(raw)

    assert (record.key, record.on_hand) == ("RM-7|P200|", Quantity(value=Decimal(4), unit="EA"))

    raw["stock"]["plant"] = {}
    assert problems(field_map, raw) == ["missing required field @ $.location_id (column stock.plant.code)"]


def test_a_field_named_with_a_dot_is_read_before_a_nested_path() -> None:
    field_map = FieldMap("items", Mapping(system="erp", entity="item", fields={
        "item_id": "item.no", "base_unit": "UOM"}))

    assert field_map.apply({"item.no": "FLAT", "item": {"no": "NESTED"}, "UOM": "EA"}).key == "FLAT"


def test_empty_and_blank_values_count_as_absent_so_defaults_apply() -> None:
    record = ITEMS.apply({"ITEM_NO": " A-1 ", "DESCRIPTION": "", "UOM": "EA", "ITEM_TYPE": "   ",
                          "UNIT_COST": "", "LOT_CONTROLLED": ""})

    assert isinstance(record, Item)
    assert record.item_id == "A-1"
    assert (record.description, record.item_type, record.unit_cost, record.lot_controlled) == ("", "raw", None, False)


def test_an_empty_required_value_is_missing_not_invalid() -> None:
    assert problems(ITEMS, {"ITEM_NO": "A-1", "UOM": "  "}) == ["missing required field @ $.base_unit (column UOM)"]


def test_a_quantity_without_its_value_is_left_unset_when_optional() -> None:
    record = INVENTORY.apply(inventory_row(ALLOCATED=""))

    assert isinstance(record, InventoryBalance) and record.allocated is None
    [problem] = problems(INVENTORY, inventory_row(ON_HAND=" "))
    assert problem.startswith("missing required field @ $.on_hand")
