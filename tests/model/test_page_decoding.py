"""Records decoded a page at a time (``model.base.page_decoding``) meet exactly the checks of their class: a page
passes only if every record in it would decode into the class one by one, and encodes to the same JSON."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from syncfabric.model import base
from tests.model.samples import SAMPLES

DECODED = {name: sample for name, sample in SAMPLES.items() if base.page_decoding(type(sample)) is not None}


def test_entities_without_checks_of_their_own_decode_a_page_at_a_time() -> None:
    assert "item_location" in DECODED and "item_supplier" not in DECODED  # item_supplier checks its period
    for name, sample in SAMPLES.items():
        own = type(sample).__post_init__ is not base.ModelStruct.__post_init__
        assert (name not in DECODED) == own, name


@pytest.mark.parametrize("name", sorted(DECODED))
def test_a_page_of_valid_records_passes_and_encodes_as_the_records_do(name: str) -> None:
    sample = DECODED[name]
    decoding = base.page_decoding(type(sample))
    assert decoding is not None
    page = msgspec.json.decode(b"[" + msgspec.json.encode(sample) + b"," + msgspec.json.encode(sample) + b"]",
                               type=list[decoding.unchecked])  # type: ignore[name-defined]
    assert decoding.passes(page)
    assert [msgspec.json.encode(record) for record in page] == [msgspec.json.encode(sample)] * 2
    assert decoding.keys(page) == [sample.key] * 2


def bad_values(kind: str, bounds: base.Bounds | None, value: Any) -> list[Any]:
    if kind == "key_part":
        return [f"{value}|x"]
    if kind == "utc":
        return [value.replace("Z", "+02:00") if value.endswith("Z") else value[:-6] + "+02:00", value.rstrip("Z")]
    numbers = ["NaN", "Infinity", "-Infinity", "sNaN"]
    if bounds is not None:
        numbers += [str(limit + delta) for limit, delta in ((bounds.ge, -1), (bounds.gt, 0), (bounds.le, 1))
                    if limit is not None]
    if kind == "quantity":
        return [{**value, "value": number} for number in numbers if number not in ("sNaN",)]
    return numbers


CASES = [(name, field, kind, bounds) for name, sample in sorted(DECODED.items())
         for field, _, kind, bounds in base._field_checks(type(sample))]


@pytest.mark.parametrize(("name", "field", "kind", "bounds"), CASES, ids=[f"{c[0]}.{c[1]}" for c in CASES])
def test_a_page_fails_exactly_when_one_of_its_records_fails_a_check(name: str, field: str, kind: str,
                                                                    bounds: base.Bounds | None) -> None:
    sample = DECODED[name]
    cls = type(sample)
    decoding = base.page_decoding(cls)
    assert decoding is not None
    good = msgspec.to_builtins(sample)
    if good.get(field) is None:
        good[field] = {"utc": "2025-03-14T07:30:00Z", "decimal": "1", "quantity": {"value": "1", "unit": "EA"},
                       "key_part": "K"}[kind]
    tried = 0
    for bad in [good[field], *bad_values(kind, bounds, good[field])]:
        row = {**good, field: bad}
        try:
            msgspec.convert(row, cls, strict=False)
            alone = True
        except (msgspec.ValidationError, ValueError):
            alone = False
        try:
            page = msgspec.convert([good, row, good], list[decoding.unchecked], strict=False)  # type: ignore[name-defined]
        except msgspec.ValidationError:
            assert not alone  # the type itself refuses it, as the class does
            continue
        tried += 1
        assert decoding.passes(page) is alone, (field, bad)
        if alone:
            assert msgspec.json.encode(page[1]) == msgspec.json.encode(msgspec.convert(row, cls, strict=False))
    assert tried >= 2


def test_decimal_bounds_are_checked_on_the_lowest_and_highest_value() -> None:
    decoding = base.page_decoding(type(SAMPLES["item_location"]))
    assert decoding is not None
    rows = [{"item_id": f"I{n}", "location_id": "P", "safety_stock": str(n - 1), "lead_time_days": "1"}
            for n in range(3)]
    page = msgspec.convert(rows, list[decoding.unchecked], strict=False)  # type: ignore[name-defined]
    assert page[0].safety_stock == Decimal(-1) and not decoding.passes(page)
    assert decoding.passes(page[1:])
