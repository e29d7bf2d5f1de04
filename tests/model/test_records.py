"""Behaviour of canonical records on the wire: round trips, keys, exact decimals, UTC, strictness, error paths."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import msgspec
import pytest

from syncfabric.model import ENTITIES, Quantity, Record
from syncfabric.model.master import Calendar, ItemLocation, UnitConversion
from syncfabric.model.planning import PlannedOrder
from syncfabric.model.structures import BillOfMaterial
from syncfabric.model.transactions import InventoryBalance, InventoryMovement, PurchaseOrder
from tests.model.samples import SAMPLES, T0, qty


def decode(cls: type[Record], data: object) -> Record:
    return msgspec.json.decode(json.dumps(data).encode(), type=cls)


def balance_json(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "item_id": "FG-100",
        "location_id": "P1000",
        "on_hand": {"value": "12", "unit": "EA"},
        "as_of": "2025-03-14T07:30:00Z",
    }
    data.update(changes)
    return data


def movement_json(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "movement_id": "M1",
        "item_id": "FG-100",
        "location_id": "P1000",
        "posted_at": "2025-03-14T07:30:00Z",
        "movement_type": "receipt",
        "quantity": {"value": "1", "unit": "EA"},
    }
    data.update(changes)
    return data


def purchase_order_json() -> dict[str, object]:
    return json.loads(msgspec.json.encode(SAMPLES["purchase_order"]))


# --- round trip ----------------------------------------------------------------------------------------------


def test_every_entity_has_a_sample() -> None:
    assert sorted(set(ENTITIES) - set(SAMPLES)) == [], "add a sample record in tests/model/samples.py"
    assert sorted(set(SAMPLES) - set(ENTITIES)) == []


@pytest.mark.parametrize("name", list(ENTITIES))
def test_json_round_trip_keeps_every_field(name: str) -> None:
    sample = SAMPLES.get(name)
    if sample is None:
        pytest.fail(f"no sample record for entity {name!r} in tests/model/samples.py")
    cls = ENTITIES[name]
    assert type(sample) is cls

    wire = msgspec.json.encode(sample)
    back = msgspec.json.decode(wire, type=cls)

    assert back == sample
    assert back.key == sample.key
    assert msgspec.json.encode(back) == wire, "encoding must be stable: content hashes depend on it"
    assert msgspec.convert(msgspec.to_builtins(sample), cls) == sample


# --- keys ----------------------------------------------------------------------------------------------------


def test_composite_key_joins_key_fields_in_declared_order() -> None:
    assert SAMPLES["item_location"].key == "FG-100|P1000"
    assert SAMPLES["supplier_confirmation"].key == "4500017001|00010|2"
    assert SAMPLES["forecast"].key == "FG-100|P1000|consensus|2025-04-01"


def test_balance_without_lot_keys_with_an_empty_last_part() -> None:
    balance = decode(InventoryBalance, balance_json())
    assert balance.lot == ""
    assert balance.key == "FG-100|P1000|"


def test_global_unit_conversion_keys_with_an_empty_item() -> None:
    conversion = decode(UnitConversion, {"from_unit": "KG", "to_unit": "G", "factor": "1000"})
    assert conversion.key == "|KG|G"
    assert SAMPLES["unit_conversion"].key == "FG-100|BOX|EA"


def test_timestamp_key_part_is_iso_formatted_utc() -> None:
    assert SAMPLES["shipment_milestone"].key == "ASN-77120|customs_cleared|2025-03-15T03:30:00+00:00"


@pytest.mark.parametrize("at", [
    dt.datetime(2025, 3, 15, 3, 30, tzinfo=dt.UTC), dt.datetime(1, 1, 1, tzinfo=dt.UTC),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(2025, 3, 15, 3, 30, 0, 120000, tzinfo=dt.UTC), dt.datetime(2025, 3, 15, 3, 30, 0, 7, tzinfo=dt.UTC),
    dt.datetime(2025, 3, 15, 3, 30, tzinfo=dt.timezone(dt.timedelta(0))),
])
def test_timestamp_key_part_is_what_isoformat_gives(at: dt.datetime) -> None:
    milestone = msgspec.structs.replace(SAMPLES["shipment_milestone"], occurred_at=at)
    assert milestone.key == f"ASN-77120|customs_cleared|{at.isoformat()}"


def test_key_part_with_the_separator_is_rejected() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"lot is part of the key and must not contain '\|'"):
        decode(InventoryBalance, balance_json(lot="A|B"))


# --- decimals ------------------------------------------------------------------------------------------------


def test_decimal_sums_are_exact() -> None:
    a = msgspec.json.decode(b'{"value": "0.1", "unit": "EA"}', type=Quantity)
    b = msgspec.json.decode(b'{"value": "0.2", "unit": "EA"}', type=Quantity)
    assert a.value + b.value == Decimal("0.3")
    assert str(a.value + b.value) == "0.3"


def test_json_number_for_a_decimal_decodes_from_its_text_not_through_a_float() -> None:
    a = msgspec.json.decode(b'{"value": 0.1, "unit": "EA"}', type=Quantity)
    b = msgspec.json.decode(b'{"value": 0.2, "unit": "EA"}', type=Quantity)
    assert a.value + b.value == Decimal("0.3")
    precise = msgspec.json.decode(b'{"value": 0.30000000000000000000000001, "unit": "KG"}', type=Quantity)
    assert precise.value == Decimal("0.30000000000000000000000001")  # a float would have lost the tail
    assert not isinstance(precise.value, float)


def test_decimals_are_written_as_strings() -> None:
    wire = json.loads(msgspec.json.encode(qty("0.10")))
    assert wire == {"value": "0.10", "unit": "EA"}


def test_python_float_converts_through_its_shortest_repr() -> None:
    # Mapping builds records with msgspec.convert; a float there is already rounded by the source system, and
    # msgspec keeps what the float prints as, not its binary expansion.
    assert msgspec.convert({"value": 0.1, "unit": "EA"}, Quantity).value == Decimal("0.1")


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_non_finite_decimals_are_rejected(bad: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=r"value must be a finite decimal.*\$\.on_hand"):
        decode(InventoryBalance, balance_json(on_hand={"value": bad, "unit": "EA"}))


def test_decimal_bounds_are_checked_with_the_field_name() -> None:
    with pytest.raises(msgspec.ValidationError, match="safety_stock must be >= 0"):
        decode(ItemLocation, {"item_id": "FG-100", "location_id": "P1000", "safety_stock": "-1"})
    with pytest.raises(msgspec.ValidationError, match="factor must be > 0"):
        decode(UnitConversion, {"from_unit": "KG", "to_unit": "G", "factor": 0})


# --- timestamps ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stamp", ["2025-03-14T07:30:00Z", "2025-03-14T07:30:00+00:00"])
def test_utc_timestamps_are_accepted(stamp: str) -> None:
    assert decode(InventoryBalance, balance_json(as_of=stamp)).as_of == T0


def test_non_utc_offset_is_rejected_naming_the_field() -> None:
    with pytest.raises(msgspec.ValidationError, match="as_of must be in UTC, got offset 2:00:00"):
        decode(InventoryBalance, balance_json(as_of="2025-03-14T09:30:00+02:00"))


def test_naive_timestamp_is_rejected_when_decoding() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"timezone.*\$\.as_of"):
        decode(InventoryBalance, balance_json(as_of="2025-03-14T07:30:00"))


def test_naive_or_local_timestamp_is_rejected_when_built_in_python() -> None:
    with pytest.raises(ValueError, match="as_of must be timezone-aware"):
        InventoryBalance(item_id="FG-100", location_id="P1000", on_hand=qty("1"), as_of=dt.datetime(2025, 3, 14))
    berlin = dt.timezone(dt.timedelta(hours=1))
    with pytest.raises(ValueError, match="as_of must be in UTC"):
        InventoryBalance(item_id="FG-100", location_id="P1000", on_hand=qty("1"), as_of=T0.astimezone(berlin))


# --- strictness ----------------------------------------------------------------------------------------------


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field `qty`"):
        decode(InventoryBalance, balance_json(qty=3))


def test_unknown_fields_in_lines_are_rejected_with_their_path() -> None:
    data = purchase_order_json()
    data["lines"][0]["schedule"][1]["eta"] = "soon"
    with pytest.raises(msgspec.ValidationError, match=r"unknown field `eta` - at `\$\.lines\[0\]\.schedule\[1\]`"):
        decode(PurchaseOrder, data)


def test_records_are_frozen() -> None:
    balance = SAMPLES["inventory_balance"]
    with pytest.raises(AttributeError):
        balance.on_hand = qty("0")  # type: ignore[misc]
    with pytest.raises(AttributeError):
        balance.on_hand.value = Decimal(0)  # type: ignore[misc]
    assert msgspec.structs.replace(balance, lot="").key == "FG-100|P1000|"


def test_wrong_literal_is_rejected() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"Invalid enum value 'teleport' - at `\$\.movement_type`"):
        decode(InventoryMovement, movement_json(movement_type="teleport"))


# --- nested lines --------------------------------------------------------------------------------------------


def test_invalid_line_reports_its_index() -> None:
    data = purchase_order_json()
    data["lines"].append({**data["lines"][0], "line_id": "00020", "quantity": {"value": "-5", "unit": "EA"}})
    with pytest.raises(msgspec.ValidationError, match=r"quantity must be > 0, got -5 EA - at `\$\.lines\[1\]`"):
        decode(PurchaseOrder, data)


def test_type_error_inside_a_line_reports_the_full_path() -> None:
    data = purchase_order_json()
    data["lines"].append({**data["lines"][0], "line_id": "00020", "quantity": {"value": "lots", "unit": "EA"}})
    with pytest.raises(msgspec.ValidationError, match=r"Invalid decimal string - at `\$\.lines\[1\]\.quantity\.value`"):
        decode(PurchaseOrder, data)


def test_orders_need_lines() -> None:
    data = purchase_order_json()
    data["lines"] = []
    with pytest.raises(msgspec.ValidationError, match=r"length >= 1 - at `\$\.lines`"):
        decode(PurchaseOrder, data)


def test_line_ids_are_unique_within_a_record() -> None:
    data = purchase_order_json()
    data["lines"].append(data["lines"][0])
    with pytest.raises(msgspec.ValidationError, match="line_id must be unique, '00010' appears more than once"):
        decode(PurchaseOrder, data)


# --- rules across fields -------------------------------------------------------------------------------------


def test_movement_quantity_sign_follows_movement_type() -> None:
    receipt = movement_json(movement_type="receipt", quantity={"value": "-3", "unit": "EA"})
    with pytest.raises(msgspec.ValidationError, match="quantity of a receipt must be positive"):
        decode(InventoryMovement, receipt)
    assert decode(InventoryMovement, {**receipt, "movement_type": "adjustment"}).quantity.value == -3


def test_periods_must_not_end_before_they_start() -> None:
    data = json.loads(msgspec.json.encode(SAMPLES["bill_of_material"]))
    data["lines"][1]["valid_from"], data["lines"][1]["valid_to"] = "2025-06-01", "2025-05-31"
    expected = r"valid_to \(2025-05-31\) must not be before valid_from .* - at `\$\.lines\[1\]`"
    with pytest.raises(msgspec.ValidationError, match=expected):
        decode(BillOfMaterial, data)


def test_bom_component_cannot_be_its_parent() -> None:
    data = json.loads(msgspec.json.encode(SAMPLES["bill_of_material"]))
    data["lines"][0]["component_id"] = "FG-100"
    with pytest.raises(msgspec.ValidationError, match=r"lines\[0\]\.component_id is the parent item"):
        decode(BillOfMaterial, data)


def test_transfer_needs_a_different_source_location() -> None:
    data = json.loads(msgspec.json.encode(SAMPLES["planned_order"]))
    data.update(order_type="transfer", supplier_id=None)
    with pytest.raises(msgspec.ValidationError, match="needs a source_location_id"):
        decode(PlannedOrder, data)
    data["source_location_id"] = "DC-EAST"
    assert decode(PlannedOrder, data).source_location_id == "DC-EAST"


def test_calendar_hours_per_day_counts_shifts_across_midnight() -> None:
    assert SAMPLES["calendar"].hours_per_day() == Decimal(15)
    night_shift = {"name": "night", "start": "22:00:00", "end": "06:00:00"}
    night = decode(Calendar, {"calendar_id": "NIGHT", "shifts": [night_shift]})
    assert night.hours_per_day() == Decimal(8)
    assert decode(Calendar, {"calendar_id": "ALLDAY"}).hours_per_day() == Decimal(24)
