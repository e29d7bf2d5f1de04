"""Nested JSON documents with lists: each element of a source list becomes a line, with its own problems."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from syncfabric.config.schema import CodeMap, Mapping, Units
from syncfabric.errors import RecordError
from syncfabric.mapping import FieldMap

UNITS = msgspec.convert({"items": {"100200": {"base_unit": "EA", "conversions": [
    {"from": "BOX", "to": "EA", "factor": 12}]}}}, Units)
ORDERS = msgspec.convert({"system": "erp-eu", "entity": "purchase_order", "fields": {
    "order_id": "header.EBELN",
    "supplier_id": "header.LIFNR",
    "lines": {"each": "items", "fields": {
        "line_id": {"from": "EBELP", "pad": {"width": 5}},
        "item_id": {"from": "MATNR", "xref": {"entity": "item", "derive": {"strip_prefix": "MAT-", "remove": "-"}}},
        "location_id": {"from": "WERKS", "code_map": "plants"},
        "quantity": {"value": "MENGE", "unit": "MEINS", "convert_to": "base_unit"},
        "schedule": {"each": "schedule", "fields": {
            "schedule_id": "ETENR", "delivery_date": "EINDT",
            "quantity": {"value": "MENGE", "unit": "MEINS", "convert_to": "base_unit"}}},
    }},
}}, Mapping)
PLANTS = {"plants": CodeMap(values={"1000": "DE-HAM"})}


def order(**line: object) -> dict:
    first = {"EBELP": "10", "MATNR": "MAT-100-200", "WERKS": "1000", "MENGE": "2", "MEINS": "BOX",
             "schedule": [{"ETENR": "1", "EINDT": "2025-03-10", "MENGE": "1", "MEINS": "BOX"},
                          {"ETENR": "2", "EINDT": "2025-03-17", "MENGE": "12", "MEINS": "EA"}]}
    return {"header": {"EBELN": "4500001", "LIFNR": "S1"}, "items": [first, {**first, "EBELP": "20", **line}]}


def test_each_element_of_a_list_becomes_a_line() -> None:
    fm = FieldMap("orders", ORDERS, units=UNITS, code_maps=PLANTS)

    record, claims = fm.map(order())

    assert [line.line_id for line in record.lines] == ["00010", "00020"]
    assert {(line.item_id, line.location_id, line.quantity.value, line.quantity.unit) for line in record.lines} == {
        ("100200", "DE-HAM", Decimal(24), "EA")}
    assert [(s.quantity.value, s.quantity.unit) for s in record.lines[0].schedule] == [(12, "EA"), (12, "EA")]
    assert {claim.external_id for claim in claims} == {"MAT-100-200"}


def test_problems_in_lines_are_located_at_the_line() -> None:
    fm = FieldMap("orders", ORDERS, units=UNITS, code_maps=PLANTS)

    with pytest.raises(RecordError) as failed:
        fm.apply(order(WERKS="9999", MEINS="PAL"))

    assert [str(p) for p in failed.value.problems] == [
        "unmapped code '9999' in code map 'plants' (version 1) @ $.lines[1].location_id (column WERKS)",
        "no conversion from 'PAL' to 'EA' for item '100200' @ $.lines[1].quantity.unit (column MEINS)",
    ]
