"""Mapping expressions name code maps, functions, entities and units: each wrong name is reported at its line."""

from __future__ import annotations

from syncfabric.config import validate_estate_file
from tests.config.conftest import VALID, line_of

CODE_MAPS = """\
code_maps:
  item-status: {version: 2, values: {"10": active, "90": obsolete}}
units:
  conversions: [{from: BOX, to: EA, factor: 12}]
  items: {"100200": {base_unit: EA}}
"""


def problems_for(write_estate, text: str) -> tuple[str, list[str]]:
    path = write_estate(text)
    return str(path), validate_estate_file(path, environ={})


def test_expressions_that_name_existing_things_are_valid(write_estate) -> None:
    text = VALID.replace(
        "      item_id: ITEM_NO\n      description: header.text\n",
        "      item_id: {from: ITEM_NO, xref: {entity: item, derive: {strip_prefix: MAT-, remove: '-'}}}\n"
        "      description: {concat: [header.text, {const: ' / '}, {function: upper, args: [SIZE]}]}\n"
        "      status: {from: STATUS, code_map: item-status, default: '10'}\n",
    ).replace("on_hand: {value: QTY, unit: UOM}", "on_hand: {value: QTY, unit: UOM, convert_to: base_unit}") \
        .replace("as_of: STAMP", "as_of: {from: STAMP, datetime: {format: '%d.%m.%Y %H:%M', location: PLANT}}")

    _path, problems = problems_for(write_estate, text + CODE_MAPS)

    assert problems == []


def test_unknown_code_maps_functions_and_convert_targets_are_reported_with_line_and_path(write_estate) -> None:
    text = VALID.replace(
        "      description: header.text\n",
        "      description: {concat: [header.text, {function: shout, args: [SIZE]}]}\n"
        "      status: {from: STATUS, code_map: item-stat}\n"
        "      category: {from: CAT, xref: {entity: item, derive: {strip: X}}, colour: red}\n",
    ).replace("on_hand: {value: QTY, unit: UOM}", "on_hand: {value: QTY, unit: UOM, convert_to: CRATE}")
    full = text + CODE_MAPS

    path, problems = problems_for(write_estate, full)

    assert len(problems) == 5, problems
    assert problems[0].startswith(f"{path}:{line_of(full, 'shout')}:44: unknown function 'shout' (registered: ")
    assert problems[0].endswith("@ $.mappings.erp-items.fields.description.concat[1].function")
    assert problems[1:] == [
        f"{path}:{line_of(full, 'item-stat}')}:30: unknown code map 'item-stat' (code maps: item-status); "
        f"did you mean 'item-status'? @ $.mappings.erp-items.fields.status.code_map",
        f"{path}:{line_of(full, 'colour')}:50: unknown derive rule 'strip' (rules: strip_prefix, strip_suffix, "
        f"remove, strip_leading_zeros, pad, prefix, case) @ $.mappings.erp-items.fields.category.xref.derive",
        f"{path}:{line_of(full, 'colour')}:71: unknown key 'colour' in field spec (keys: code_map, concat, const, "
        f"datetime, default, from, function, pad, split, xref) @ $.mappings.erp-items.fields.category.colour",
        f"{path}:{line_of(full, 'CRATE')}:40: convert_to takes base_unit or a known unit, on a quantity; "
        f"got 'CRATE' @ $.mappings.erp-stock.fields.on_hand.convert_to",
    ]


def test_units_named_by_conversions_must_be_known(write_estate) -> None:
    units = ("units:\n  units: {BAG: {decimals: 3}}\n"
             "  conversions: [{from: BAG, to: KG, factor: 25}, {from: CRTE, to: EA, factor: 0}]\n"
             "  items: {'100200': {base_unit: PCE, conversions: [{from: BOX, to: EA, factor: 12}]}}\n")
    full = VALID + units

    path, problems = problems_for(write_estate, full)

    assert [problem.split(" @ ")[1] for problem in problems] == [
        "$.units.conversions[1].from", "$.units.conversions[1].factor", "$.units.items.100200.base_unit"]
    assert problems[0] == (f"{path}:{line_of(full, 'CRTE')}:51: unknown unit 'CRTE': declare it under units.units "
                           f"@ $.units.conversions[1].from")


def test_a_function_may_be_named_by_module(write_estate) -> None:
    good = VALID.replace("      description: header.text\n",
                         "      description: {function: 'textwrap:dedent', args: [header.text]}\n")
    bad = VALID.replace("      description: header.text\n",
                        "      description: {function: 'no_such_module:dedent', args: [header.text]}\n")

    assert problems_for(write_estate, good)[1] == []
    [problem] = problems_for(write_estate, bad)[1]
    assert "function 'no_such_module:dedent' cannot be loaded" in problem


def test_transform_options_are_checked(write_estate) -> None:
    text = VALID.replace("      description: header.text\n",
                         "      description: {from: header.text, split: {sep: /, index: first}, pad: {width: 8, "
                         "side: middle}, datetime: {timezone: Mars/Olympus}}\n")

    _path, problems = problems_for(write_estate, text)

    assert [problem.split(": ", 1)[1] for problem in problems] == [
        "unexpected value 'first' for split.index @ $.mappings.erp-items.fields.description.split.index",
        "side must be left or right @ $.mappings.erp-items.fields.description.pad.side",
        "unknown time zone 'Mars/Olympus' @ $.mappings.erp-items.fields.description.datetime.timezone",
    ]


ORDERS = """\
  erp-orders:
    system: erp
    entity: purchase_order
    fields:
      order_id: header.EBELN
      supplier_id: header.LIFNR
      lines:
        each: items
        fields:
          line_id: EBELP
          item_id: MATNR
          location_id: {from: WERKS, code_map: plantz}
          quantity: {value: MENGE, unit: MEINS}
          schedule: {each: schedule, fields: {schedule_id: ETENR, delivery_date: EINDT, qty: MENGE}}
      supplier_name: {each: names, fields: {}}
"""


def test_list_mappings_are_checked_against_the_line_record(write_estate) -> None:
    text = VALID.replace("flows:\n", ORDERS + "flows:\n", 1)

    _path, problems = problems_for(write_estate, text)

    assert [problem.split(": ", 1)[1].split(" (")[0] for problem in problems] == [
        "unknown code map 'plantz'",
        "unknown field 'qty' on 'schedule'",
        "unknown field 'supplier_name' on entity 'purchase_order'",
    ]
    assert problems[0].endswith("@ $.mappings.erp-orders.fields.lines.fields.location_id.code_map")
    assert problems[1].endswith("@ $.mappings.erp-orders.fields.lines.fields.schedule.fields.qty")


OUTBOUND = """\
  stock-to-planner:
    system: planner
    entity: inventory_balance
    direction: outbound
    fields:
      MATNR: {from: item_id, xref: {entity: item}}
      WERKS: {from: location_id, code_map: plant-codes}
      MENGE: on_hand.quantity
      STAT: {from: status, code_map: item-status}
      STAMP: {from: as_of, datetime: {format: '%d.%m.%Y', location: site}}
"""


def test_outbound_mappings_read_canonical_fields_through_invertible_code_maps(write_estate) -> None:
    text = VALID.replace("flows:\n", OUTBOUND + "flows:\n").replace(
        "    entities: [item, inventory_balance]\n",
        "    entities: [item, inventory_balance]\n    mapping: stock-to-planner\n")
    full = text + CODE_MAPS.replace("units:\n", "  plant-codes: {values: {'1000': P1, '1001': P1, '2000': P2}}\n"
                                                 "units:\n")

    path, problems = problems_for(write_estate, full)

    at = "$.mappings.stock-to-planner.fields"
    assert problems == [
        f"{path}:{line_of(full, 'plant-codes}')}:34: code map 'plant-codes' cannot be inverted: canonical value 'P1' "
        f"comes from codes '1000', '1001'; an outbound mapping needs one code per value @ {at}.WERKS.code_map",
        f"{path}:{line_of(full, 'on_hand.quantity')}:7: unknown field 'quantity' of canonical Quantity (fields: "
        f"value, unit) @ {at}.MENGE",
        f"{path}:{line_of(full, 'STAT:')}:14: unknown field 'status' of canonical inventory_balance (fields: "
        f"item_id, location_id, lot, on_hand, allocated, in_inspection, as_of, changed_at, blocked, in_transit) "
        f"@ {at}.STAT.from",
        f"{path}:{line_of(full, 'STAMP:')}:59: unknown field 'site' of canonical inventory_balance (fields: "
        f"item_id, location_id, lot, on_hand, allocated, in_inspection, as_of, changed_at, blocked, in_transit) "
        f"@ {at}.STAMP.datetime.location",
    ]


def test_a_flow_and_its_mapping_go_the_same_direction(write_estate) -> None:
    text = VALID.replace("      as_of: STAMP\n", "      as_of: STAMP\n    direction: outbound\n")

    _path, problems = problems_for(write_estate, text)

    assert any("mapping 'erp-stock' is an outbound mapping, but this flow is inbound @ $.flows.stock-in.mapping"
               in problem for problem in problems), problems
