"""Outbound mappings: a canonical record into a target's own record, with inverse code maps, the target's ids from
the cross-reference and local date-times; every problem at its path in the target record."""

from __future__ import annotations

import pytest

from syncfabric.config.schema import CodeMap, Mapping
from syncfabric.errors import RecordError
from syncfabric.mapping.outbound import OutboundMap

CODE_MAPS = {"plants": CodeMap(values={"1000": "P1", "2000": "P2"}, version=3),
             "po-status": CodeMap(values={"A": "sent", "B": "confirmed"})}


class Links:
    def __init__(self, links: dict[tuple[str, str, str], str]) -> None:
        self.links = links

    def xref(self, system: str, entity: str, external_id: str) -> str | None:
        return next((k for (s, e, k), v in self.links.items() if (s, e, v) == (system, entity, external_id)), None)

    def xref_external(self, system: str, entity: str, key: str) -> str | None:
        return self.links.get((system, entity, key))


def outbound(entity: str, fields: dict, links: dict | None = None, zones: dict | None = None) -> OutboundMap:
    return OutboundMap("out", Mapping(system="wms", entity=entity, direction="outbound", fields=fields),
                       code_maps=CODE_MAPS, time_zones=(zones or {}).get, xref=Links(links or {}))


BALANCE = {"item_id": "FG-1", "location_id": "P1", "lot": "", "on_hand": {"value": "12.5", "unit": "KG"},
           "as_of": "2026-11-02T18:00:00Z"}


def test_a_balance_is_written_with_the_targets_names_codes_ids_and_local_time() -> None:
    field_map = outbound("inventory_balance", {
        "MATNR": {"from": "item_id", "xref": {"entity": "item"}},
        "WERKS": {"from": "location_id", "code_map": "plants"},
        "CHARG": {"from": "lot", "default": "-"},
        "MENGE": "on_hand.value",
        "MEINS": "on_hand.unit",
        "STAMP": {"from": "as_of", "datetime": {"format": "%d.%m.%Y %H:%M", "location": "location_id"}},
        "STAMP_ISO": {"from": "as_of", "datetime": {"timezone": "America/Chicago"}},
        "KEY": {"concat": ["item_id", {"from": "location_id", "pad": {"width": 4, "fill": "_"}}], "sep": "/"},
        "SITE_NO": {"from": "location_id", "split": {"sep": "P", "index": 1}},
        "ORIGIN": {"const": "syncfabric"},
        "NESTED": {"qty": "on_hand.value", "unit": {"const": "X"}},
    }, links={("wms", "item", "FG-1"): "W-0001"}, zones={"P1": "Europe/Berlin"})

    assert field_map.apply(BALANCE) == {
        "MATNR": "W-0001", "WERKS": "1000", "CHARG": "-", "MENGE": "12.5", "MEINS": "KG",
        "STAMP": "02.11.2026 19:00", "STAMP_ISO": "2026-11-02T12:00:00-06:00", "KEY": "FG-1/__P1",
        "SITE_NO": "1", "ORIGIN": "syncfabric", "NESTED": {"qty": "12.5", "unit": "X"},
    }
    assert field_map.version == "out@1+plants@3"


def test_every_problem_is_reported_at_the_target_path_with_the_canonical_field() -> None:
    field_map = outbound("inventory_balance", {
        "MATNR": {"from": "item_id", "xref": {"entity": "item"}},
        "WERKS": {"from": "location_id", "code_map": "plants"},
        "STAMP": {"from": "as_of", "datetime": {"location": "location_id"}},
    })

    with pytest.raises(RecordError) as caught:
        field_map.apply({**BALANCE, "location_id": "P9"}, key="FG-1|P9|")

    assert [str(problem) for problem in caught.value.problems] == [
        "no wms id for canonical item 'FG-1' in the cross-reference @ $.MATNR (field item_id)",
        "no code for canonical value 'P9' in code map 'plants' (version 3) @ $.WERKS (field location_id)",
        "no time zone known for location 'P9' @ $.STAMP (field as_of)",
    ]
    assert caught.value.key == "FG-1|P9|" and caught.value.system == "wms"


def test_lines_map_one_target_line_each_reading_the_header_too() -> None:
    field_map = outbound("purchase_order", {
        "EBELN": "order_id",
        "STATUS": {"from": "status", "code_map": "po-status"},
        "ITEMS": {"each": "lines", "fields": {"EBELP": {"from": "line_id", "pad": {"width": 5}},
                                              "EBELN": "order_id", "MENGE": "quantity.value"}},
    })
    order = {"order_id": "PO-9", "supplier_id": "S1", "status": "confirmed", "lines": [
        {"line_id": "10", "item_id": "A", "location_id": "P1", "quantity": {"value": "5", "unit": "EA"}},
        {"line_id": "20", "item_id": "B", "location_id": "P1", "quantity": {"value": "7", "unit": "EA"}}]}

    assert field_map.apply(order) == {"EBELN": "PO-9", "STATUS": "B", "ITEMS": [
        {"EBELP": "00010", "EBELN": "PO-9", "MENGE": "5"}, {"EBELP": "00020", "EBELN": "PO-9", "MENGE": "7"}]}


def test_a_deletion_is_addressed_by_the_fields_the_key_gives() -> None:
    field_map = outbound("inventory_balance", {
        "MATNR": "item_id", "WERKS": {"from": "location_id", "code_map": "plants"}, "MENGE": "on_hand.value"})

    assert field_map.key_fields("FG-1|P2|") == {"MATNR": "FG-1", "WERKS": "2000"}
