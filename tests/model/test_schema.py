"""JSON Schemas written for every entity are valid draft 2020-12 and accept what syncfabric writes."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import jsonschema
import msgspec
import pytest
from jsonschema import Draft202012Validator

from syncfabric.model import ENTITIES
from syncfabric.model.schema import EntityRow, describe, entity_schema, write_schemas
from tests.model.samples import SAMPLES


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("schemas")
    paths = write_schemas(folder)
    assert [path.name for path in paths] == [f"{name}.schema.json" for name in ENTITIES]
    return {path.name.removesuffix(".schema.json"): json.loads(path.read_text(encoding="utf-8")) for path in paths}


@pytest.mark.parametrize("name", list(ENTITIES))
def test_schema_is_valid_and_validates_the_sample(name: str, schemas: dict[str, dict]) -> None:
    schema = schemas[name]
    Draft202012Validator.check_schema(schema)
    cls = ENTITIES[name]
    assert schema["title"] == name
    assert schema["description"] == inspect.cleandoc(cls.__doc__ or "")
    assert schema["x-key"] == list(cls.key_fields)
    assert schema["x-domain"] == cls.domain
    sample = json.loads(msgspec.json.encode(SAMPLES[name]))
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(sample)]
    assert errors == []


def test_schema_rejects_what_decoding_rejects(schemas: dict[str, dict]) -> None:
    validator = Draft202012Validator(schemas["inventory_balance"])
    good = json.loads(msgspec.json.encode(SAMPLES["inventory_balance"]))
    validator.validate(good)
    for bad in (
        {**good, "qty": 1},
        {**good, "on_hand": {"value": "NaN", "unit": "EA"}},
        {**good, "as_of": "2025-03-14T09:30:00+02:00"},
        {key: value for key, value in good.items() if key != "on_hand"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(bad)


def test_non_negative_decimals_have_a_pattern_without_sign(schemas: dict[str, dict]) -> None:
    validator = Draft202012Validator(schemas["item_location"])
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"item_id": "A", "location_id": "P", "safety_stock": "-1"})


def test_nested_line_schemas_are_defined(schemas: dict[str, dict]) -> None:
    po = schemas["purchase_order"]
    assert {"PurchaseOrderLine", "ScheduleLine", "Quantity"} <= set(po["$defs"])
    assert "PurchaseOrder" not in po["$defs"]
    assert po["x-references"]["lines.item_id"] == "item"


def test_entity_schema_matches_the_written_file(tmp_path: Path) -> None:
    (path,) = [p for p in write_schemas(tmp_path) if p.name == "item.schema.json"]
    assert json.loads(path.read_text(encoding="utf-8")) == entity_schema("item")


def test_describe_lists_every_entity_in_registry_order() -> None:
    rows = describe()
    assert [row.entity for row in rows] == list(ENTITIES)
    balance = next(row for row in rows if row.entity == "inventory_balance")
    assert balance == EntityRow(
        entity="inventory_balance",
        domain="transactions",
        key_fields=("item_id", "location_id", "lot"),
        field_count=len(msgspec.structs.fields(ENTITIES["inventory_balance"])),
        summary="Stock of one item at one location (optionally one lot), split by availability.",
    )
    assert all(row.summary and "\n" not in row.summary for row in rows)
