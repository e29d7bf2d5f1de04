"""Code maps: versioned translations; an unmapped code names the code and the map."""

from __future__ import annotations

import msgspec
import pytest

from syncfabric.config.schema import CodeMap, Mapping
from syncfabric.errors import RecordError
from syncfabric.mapping import FieldMap
from syncfabric.mapping.codes import CodeMapError, CodeMaps

MAPS = {
    "item-status": CodeMap(version=3, values={"10": "active", "50": "blocked", "99": "obsolete"}),
    "item-types": CodeMap(values={"FERT": "finished", "HALB": "semi_finished", "ROH": "raw"}),
    "plants": CodeMap(values={"1000": "DE-HAM", "2000": "US-CHI"}),
}
ITEMS = msgspec.convert({"system": "erp", "entity": "item", "version": 2, "fields": {
    "item_id": "MATNR", "base_unit": {"const": "EA"}, "item_type": {"from": "MTART", "code_map": "item-types"},
    "status": {"from": "STATUS", "code_map": "item-status", "default": "10"}}}, Mapping)


def test_codes_translate_as_text() -> None:
    maps = CodeMaps(MAPS)
    assert maps.translate("item-status", 50) == "blocked"
    assert maps.translate("plants", "1000") == "DE-HAM"


def test_an_unmapped_code_names_code_map_and_version() -> None:
    with pytest.raises(CodeMapError, match=r"unmapped code '42' in code map 'item-status' \(version 3\)"):
        CodeMaps(MAPS).translate("item-status", "42")
    with pytest.raises(CodeMapError, match="unknown code map 'nope'"):
        CodeMaps(MAPS).translate("nope", "1")


def test_a_mapping_translates_codes_and_reports_unmapped_ones_at_the_field() -> None:
    fm = FieldMap("items", ITEMS, code_maps=MAPS)
    row = {"MATNR": "100200", "MTART": "FERT"}

    assert fm.apply({**row, "STATUS": "99"}).status == "obsolete"
    assert fm.apply(row).status == "active"  # the default code goes through the map too
    assert fm.apply(row).item_type == "finished"
    with pytest.raises(RecordError) as unmapped:
        fm.apply({**row, "MTART": "DIEN", "STATUS": "42"})

    assert [str(p) for p in unmapped.value.problems] == [
        "unmapped code 'DIEN' in code map 'item-types' (version 1) @ $.item_type (column MTART)",
        "unmapped code '42' in code map 'item-status' (version 3) @ $.status (column STATUS)",
    ]


def test_the_mapping_version_carries_the_versions_of_its_code_maps() -> None:
    assert FieldMap("items", ITEMS, code_maps=MAPS).version == "items@2+item-status@3+item-types@1"
    newer = {**MAPS, "item-types": CodeMap(version=2, values={"FERT": "finished"})}
    assert FieldMap("items", ITEMS, code_maps=newer).version == "items@2+item-status@3+item-types@2"
