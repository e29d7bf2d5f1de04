"""Units: global and per-item conversions, chains, rounding per unit; unknown units and gaps are errors."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from syncfabric.config.schema import Mapping, Units
from syncfabric.errors import RecordError
from syncfabric.mapping import FieldMap
from syncfabric.mapping.units import UnitError, UnitTable

UNITS = msgspec.convert({
    "units": {"EA": {"decimals": 0, "rounding": "half_up"}, "KG": {"decimals": 2, "rounding": "half_even"},
              "BAG": {"decimals": 3}},
    "conversions": [{"from": "DZ", "to": "EA", "factor": 12}, {"from": "KG", "to": "G", "factor": 1000}],
    "items": {
        "A": {"base_unit": "EA", "conversions": [{"from": "BOX", "to": "EA", "factor": 12},
                                                 {"from": "PAL", "to": "BOX", "factor": 40}]},
        "B": {"base_unit": "EA", "conversions": [{"from": "BOX", "to": "EA", "factor": 6}]},
        "S": {"base_unit": "KG", "conversions": [{"from": "EA", "to": "KG", "factor": "0.125"},
                                                 {"from": "BAG", "to": "KG", "factor": 25}]},
    },
}, Units)


def table() -> UnitTable:
    return UnitTable(UNITS)


def test_item_conversions_win_and_chains_are_followed() -> None:
    units = table()
    assert units.convert(Decimal(2), "BOX", "EA", "A") == Decimal(24)
    assert units.convert(Decimal(2), "BOX", "EA", "B") == Decimal(12)
    assert units.convert(Decimal(1), "PAL", "EA", "A") == Decimal(480)
    assert units.convert(Decimal(3), "DZ", "EA", "A") == Decimal(36)
    assert units.convert(Decimal("1.5"), "KG", "G") == Decimal(1500)


def test_inverse_conversions_round_by_the_target_unit() -> None:
    units = table()
    assert units.convert(Decimal(30), "EA", "BOX", "A") == Decimal("2.5")  # BOX is not declared: 6 decimals
    assert units.convert(Decimal(7), "EA", "DZ", "A") == Decimal("0.583333")
    assert units.convert(Decimal(3), "EA", "KG", "S") == Decimal("0.38")  # 0.375, half_even → 0.38
    assert units.convert(Decimal(1), "KG", "BAG", "S") == Decimal("0.04")
    assert units.convert(Decimal(13), "EA", "EA") == Decimal(13)
    assert str(units.convert(Decimal(20), "BOX", "EA", "A")) == "240"
    assert str(units.convert(Decimal(20), "BAG", "KG", "S")) == "500"
    assert str(units.convert(Decimal("0.5"), "KG", "G")) == "500"


def test_an_unknown_unit_or_a_missing_conversion_is_an_error() -> None:
    units = table()
    with pytest.raises(UnitError, match="unknown unit 'CRATE'"):
        units.factor("CRATE", "EA", "A")
    with pytest.raises(UnitError, match="no conversion from 'BOX' to 'KG' for item 'S'"):
        units.factor("BOX", "KG", "S")
    with pytest.raises(UnitError, match="no conversion from 'BOX' to 'EA' for item 'Z'"):
        units.factor("BOX", "EA", "Z")
    with pytest.raises(UnitError, match="no base unit for item 'Z'"):
        units.base_unit("Z")


def test_the_version_changes_with_the_table() -> None:
    changed = msgspec.structs.replace(UNITS, conversions=[*UNITS.conversions,
                                                          msgspec.convert({"from": "CS", "to": "EA", "factor": 24},
                                                                          type(UNITS.conversions[0]))])
    assert UnitTable(changed).version != table().version
    assert UnitTable(UNITS).version == table().version


def inventory_map(on_hand: dict[str, Any]) -> FieldMap:
    mapping = msgspec.convert({"system": "erp", "entity": "inventory_balance", "version": 3, "fields": {
        "item_id": "ITEM", "location_id": "SITE", "on_hand": on_hand, "as_of": {"const": "2025-03-01T06:00:00Z"}}},
        Mapping)
    return FieldMap("inventory", mapping, units=UNITS)


def test_a_mapped_quantity_converts_to_the_item_base_unit() -> None:
    fm = inventory_map({"value": "QTY", "unit": "UOM", "convert_to": "base_unit"})

    record = fm.apply({"ITEM": "A", "SITE": "P1", "QTY": "2", "UOM": "BOX"})

    assert (record.on_hand.value, record.on_hand.unit) == (Decimal(24), "EA")
    assert fm.version == f"inventory@3+units@{table().version}"


def test_a_quantity_converts_to_a_named_unit() -> None:
    fm = inventory_map({"value": "QTY", "unit": "UOM", "convert_to": "G"})
    record = fm.apply({"ITEM": "S", "SITE": "P1", "QTY": "1.25", "UOM": "KG"})
    assert (record.on_hand.value, record.on_hand.unit) == (Decimal(1250), "G")


def test_a_missing_conversion_names_item_and_units_at_the_quantity() -> None:
    fm = inventory_map({"value": "QTY", "unit": "UOM", "convert_to": "base_unit"})

    with pytest.raises(RecordError) as missing:
        fm.apply({"ITEM": "S", "SITE": "P1", "QTY": "2", "UOM": "BOX"})
    with pytest.raises(RecordError) as unknown:
        fm.apply({"ITEM": "A", "SITE": "P1", "QTY": "2", "UOM": "CRATE"})

    assert [str(p) for p in missing.value.problems] == [
        "no conversion from 'BOX' to 'KG' for item 'S' @ $.on_hand.unit (column UOM)"]
    assert [str(p) for p in unknown.value.problems] == ["unknown unit 'CRATE' @ $.on_hand.unit (column UOM)"]


def test_units_declared_by_the_estate_are_known() -> None:
    fm = inventory_map({"value": "QTY", "unit": "UOM"})
    assert fm.apply({"ITEM": "S", "SITE": "P1", "QTY": "2", "UOM": "BAG"}).on_hand.unit == "BAG"
