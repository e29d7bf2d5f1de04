"""The entity registry: names, keys, docstrings and the dependency order flows rely on."""

from __future__ import annotations

import re
import typing
from typing import Any

import msgspec
import pytest

from syncfabric.model import ENTITIES, entity_type
from syncfabric.model.base import Record

ORDER = list(ENTITIES)


def position(name: str) -> int:
    return ORDER.index(name)


def test_master_data_comes_before_what_refers_to_it() -> None:
    assert position("location") < position("item_location")
    assert position("item") < position("item_location")
    assert position("item_location") < position("inventory_balance")
    for order in ("sales_order", "purchase_order", "production_order"):
        assert position("inventory_balance") < position(order)
    assert position("purchase_order") < position("supplier_confirmation")
    assert position("production_order") < position("production_completion")
    assert position("plan_run") < position("planned_order")


@pytest.mark.parametrize("name", ORDER)
def test_every_reference_points_to_an_earlier_entity(name: str) -> None:
    for path, target in ENTITIES[name].references.items():
        assert target in ENTITIES, f"{name}.{path} refers to unknown entity {target!r}"
        assert position(target) <= position(name), f"{name}.{path} -> {target}, which comes later"


@pytest.mark.parametrize("name", ORDER)
def test_reference_paths_name_real_fields(name: str) -> None:
    for path in ENTITIES[name].references:
        struct: Any = ENTITIES[name]
        for part in path.split("."):
            fields = {field.name: field.type for field in msgspec.structs.fields(struct)}
            assert part in fields, f"{name}: {path!r} has no field {part!r}"
            struct = _innermost(fields[part])


@pytest.mark.parametrize("name", ORDER)
def test_entity_declaration(name: str) -> None:
    cls = entity_type(name)
    assert cls.entity == name
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", name)
    assert cls.domain in {"master", "transactions", "planning", "events"}
    assert (cls.__doc__ or "").strip(), f"{cls.__name__} needs a docstring saying what it is for"
    fields = {field.name: field for field in msgspec.structs.fields(cls)}
    assert cls.key_fields
    for key in cls.key_fields:
        assert key in fields, f"{name}: key field {key!r} is not a field"
        assert type(None) not in _flat_args(fields[key].type), f"{name}: key field {key!r} may be None; use ''"


def test_domains_appear_in_order() -> None:
    domains = [ENTITIES[name].domain for name in ORDER]
    rank = {"master": 0, "transactions": 1, "planning": 2, "events": 3}
    assert [rank[d] for d in domains] == sorted(rank[d] for d in domains)


def test_only_records_with_an_entity_name_are_registered() -> None:
    assert all(issubclass(cls, Record) for cls in ENTITIES.values())
    assert "business_event" not in ENTITIES  # the events' base class


def test_unknown_entity_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown entity 'widget'; known: .*inventory_balance"):
        entity_type("widget")


def _flat_args(hint: Any) -> set[Any]:
    if typing.get_origin(hint) is typing.Annotated:
        return _flat_args(typing.get_args(hint)[0])
    args = typing.get_args(hint)
    if not args:
        return {hint}
    return set().union(*(_flat_args(arg) for arg in args))


def _innermost(hint: Any) -> Any:
    """The struct (or scalar) inside Annotated, Optional and list."""
    while True:
        if typing.get_origin(hint) is typing.Annotated or typing.get_origin(hint) is list:
            hint = typing.get_args(hint)[0]
            continue
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if args and len(args) == 1:
            hint = args[0]
            continue
        return hint
