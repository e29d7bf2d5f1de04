"""Field specs beyond a source path: defaults, concat, split, pad, date-times in a location's zone, functions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from syncfabric.config.schema import Mapping
from syncfabric.errors import RecordError
from syncfabric.mapping import FieldMap, functions
from syncfabric.mapping.expressions import Environment, Scope, compile_spec, is_expression


def field_map(fields: dict[str, Any], entity: str = "item", **options: Any) -> FieldMap:
    mapping = msgspec.convert({"system": "erp", "entity": entity, "fields": fields}, Mapping)
    return FieldMap("m", mapping, **options)


def value(spec: Any, raw: dict[str, Any], env: Environment | None = None) -> Any:
    return compile_spec(spec, env or Environment())(Scope(raw))


def test_a_string_stays_a_source_path_and_const_stays_a_constant() -> None:
    assert value("A.B", {"A": {"B": " x "}}) == "x"
    assert value({"const": "EA"}, {}) == "EA"
    assert not is_expression({"value": "QTY", "unit": "UOM"})


def test_default_applies_to_absent_and_empty_values() -> None:
    assert value({"from": "U", "default": "EA"}, {"U": "  "}) == "EA"
    assert value({"from": "U", "default": "EA"}, {}) == "EA"
    assert value({"from": "U", "default": "EA"}, {"U": "KG"}) == "KG"


def test_concat_split_and_pad() -> None:
    raw = {"PLANT": "1000", "SLOC": "0001", "PATH": "EU/DE/HAM", "NO": "42"}
    assert value({"concat": ["PLANT", {"const": "-"}, "SLOC"]}, raw) == "1000-0001"
    assert value({"concat": ["PLANT", "SLOC"], "sep": "/"}, raw) == "1000/0001"
    assert value({"from": "PATH", "split": {"sep": "/", "index": -1}}, raw) == "HAM"
    assert value({"from": "NO", "pad": {"width": 6, "fill": "0"}}, raw) == "000042"
    assert value({"from": "NO", "pad": {"width": 4, "fill": "_", "side": "right"}}, raw) == "42__"


def test_local_time_of_a_location_becomes_utc() -> None:
    zones = {"DE-HAM": "Europe/Berlin", "US-CHI": "America/Chicago"}
    env = Environment(time_zones=zones.get)
    spec = {"from": "T", "datetime": {"format": "%d.%m.%Y %H:%M", "location": "SITE"}}

    winter = value(spec, {"T": "01.03.2025 07:00", "SITE": "DE-HAM"}, env)
    summer = value(spec, {"T": "01.07.2025 07:00", "SITE": "DE-HAM"}, env)
    chicago = value(spec, {"T": "01.07.2025 07:00", "SITE": "US-CHI"}, env)

    assert winter == dt.datetime(2025, 3, 1, 6, tzinfo=dt.UTC)
    assert summer == dt.datetime(2025, 7, 1, 5, tzinfo=dt.UTC)
    assert chicago == dt.datetime(2025, 7, 1, 12, tzinfo=dt.UTC)
    assert value({"from": "T", "datetime": {"timezone": "Asia/Tokyo"}}, {"T": "2025-03-01T15:00"}) == \
        dt.datetime(2025, 3, 1, 6, tzinfo=dt.UTC)
    assert value({"from": "T", "datetime": {}}, {"T": "2025-03-01T08:00+02:00"}) == \
        dt.datetime(2025, 3, 1, 6, tzinfo=dt.UTC)


def test_date_time_problems_name_the_field_and_the_column() -> None:
    fm = field_map({"item_id": "ITEM", "location_id": "SITE", "on_hand": {"value": "Q", "unit": "U"},
                    "as_of": {"from": "T", "datetime": {"format": "%d.%m.%Y %H:%M", "location": "SITE"}}},
                   "inventory_balance", time_zones={"DE-HAM": "Europe/Berlin"}.get)
    row = {"ITEM": "A", "SITE": "DE-HAM", "Q": "1", "U": "EA"}

    with pytest.raises(RecordError) as bad_format:
        fm.apply({**row, "T": "2025-03-01 07:00"})
    with pytest.raises(RecordError) as unknown_site:
        fm.apply({**row, "SITE": "XX", "T": "01.03.2025 07:00"})

    assert [str(p) for p in bad_format.value.problems] == [
        "expected a date-time in format '%d.%m.%Y %H:%M', got '2025-03-01 07:00' @ $.as_of (column T)"]
    assert [str(p) for p in unknown_site.value.problems] == [
        "no time zone known for location 'XX' @ $.as_of (column T)"]


def test_registered_functions_are_called_with_their_arguments() -> None:
    @functions.register("net_weight")
    def net_weight(gross: str, tare: str) -> Decimal:
        if not gross.isdigit():
            raise ValueError(f"gross weight {gross!r} is not a number")
        return Decimal(gross) - Decimal(tare)

    try:
        fm = field_map({"item_id": "ITEM", "base_unit": {"const": "EA"},
                        "weight_kg": {"function": "net_weight", "args": ["GROSS", {"const": "2"}]}})
        assert fm.apply({"ITEM": "A", "GROSS": "12"}).weight_kg == Decimal(10)
        with pytest.raises(RecordError) as failed:
            fm.apply({"ITEM": "A", "GROSS": "x"})
        assert [str(p) for p in failed.value.problems] == [
            "function 'net_weight' failed: gross weight 'x' is not a number @ $.weight_kg"]
    finally:
        functions.unregister("net_weight")


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        functions.register("upper")(lambda value: value)
