"""Data-quality rules on canonical records: each kind, severities, paths, batched look-ups, estate checks."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from syncfabric.config import validate_estate_file
from syncfabric.config.schema import Rule
from syncfabric.errors import Problem
from syncfabric.mapping.rules import RuleSet, expand, parse_path, register_rule, unregister_rule
from syncfabric.model import Quantity
from syncfabric.model.transactions import InventoryBalance, PurchaseOrder
from tests.config.conftest import VALID, line_of
from tests.config.conftest import fake_kinds as fake_kinds  # fixtures shared with the estate tests
from tests.config.conftest import write_estate as write_estate


def qty(value: str, unit: str = "EA") -> Quantity:
    return Quantity(value=Decimal(value), unit=unit)


def order(order_id: str = "PO-4711", supplier: str = "S1", lines: list[dict[str, Any]] | None = None) -> PurchaseOrder:
    lines = lines or [{"item_id": "A"}]
    return msgspec.convert({
        "order_id": order_id, "supplier_id": supplier, "order_date": "2025-03-01",
        "lines": [
            {"line_id": str(n), "location_id": "P1", "quantity": {"value": "5", "unit": "EA"},
             "schedule": [{"schedule_id": "1", "delivery_date": "2025-04-01",
                           "quantity": {"value": "5", "unit": "EA"}}],
             **line}
            for n, line in enumerate(lines)
        ],
    }, PurchaseOrder)


def stock(item: str = "A", location: str = "P1", on_hand: str = "1") -> InventoryBalance:
    return InventoryBalance(item_id=item, location_id=location, on_hand=qty(on_hand),
                            as_of=dt.datetime(2025, 3, 1, tzinfo=dt.UTC))


class FakeStore:
    """Master data by entity; counts the look-ups the rules make."""

    def __init__(self, **rows: dict[str, dict[str, Any]]) -> None:
        self.rows = rows
        self.calls: list[tuple[str, list[str]]] = []

    def get_many(self, entity: str, keys: list[str]) -> dict[str, Any]:
        self.calls.append((entity, list(keys)))
        known = self.rows.get(entity, {})
        return {k: SimpleNamespace(payload=msgspec.json.encode(known[k])) for k in keys if k in known}


def messages(verdict) -> list[str]:
    return [str(p) for p in verdict.rejected]


def test_paths_expand_over_lines_and_report_concrete_positions() -> None:
    assert parse_path("lines[*].quantity") == ["lines", None, "quantity"]
    assert parse_path("$.lines[2].schedule[*].delivery_date") == ["lines", 2, "schedule", None, "delivery_date"]
    with pytest.raises(ValueError, match="invalid field path"):
        parse_path("lines[x]")
    data = {"lines": [{"q": 1}, {}, {"q": 3}]}
    assert [(p, v) for p, v, _ in expand(data, parse_path("lines[*].q")) if v in (1, 3)] == [
        ("$.lines[0].q", 1), ("$.lines[2].q", 3)]


def test_range_reports_the_line_and_field() -> None:
    rules = RuleSet("purchase_order", [Rule(kind="range", field="lines[*].received_quantity", min=0)])
    po = order(lines=[{"item_id": "A"}, {"item_id": "B"}, {"item_id": "C", "received_quantity": qty("-2")}])
    (verdict,) = rules.check([po], None)
    assert messages(verdict) == ["received_quantity must be ≥ 0 @ $.lines[2].received_quantity"]


def test_range_bounds_plain_numbers_and_quantities() -> None:
    rules = RuleSet("inventory_balance", [Rule(kind="range", field="on_hand", min=0, max="1000.5")])
    low, ok, high = rules.check([stock(on_hand="-1"), stock(on_hand="1000.5"), stock(on_hand="2000")], None)
    assert messages(low) == ["on_hand must be ≥ 0 @ $.on_hand"]
    assert messages(ok) == []
    assert messages(high) == ["on_hand must be ≤ 1000.5 @ $.on_hand"]


def test_required_and_warn_severity() -> None:
    rules = RuleSet("purchase_order", [
        Rule(kind="required", field="lines[*].unit_price", severity="warn"),
        Rule(kind="required", field="order_date"),
    ])
    po = order(lines=[{"item_id": "A", "unit_price": "1.5"}, {"item_id": "B"}])
    (verdict,) = rules.check([po], None)
    assert verdict.rejected == []
    assert verdict.warnings == [Problem("unit_price is required", "$.lines[1].unit_price")]


def test_references_are_read_once_per_entity_per_page() -> None:
    store = FakeStore(item={"A": {}, "B": {}}, supplier={"S1": {}}, location={"P1": {}})
    rules = RuleSet("purchase_order", [
        Rule(kind="reference", field="supplier_id", entity="supplier"),
        Rule(kind="reference", field="lines[*].item_id", entity="item"),
        Rule(kind="reference", field="lines[*].location_id", entity="location"),
    ])
    page = [order("PO-1", lines=[{"item_id": "A"}, {"item_id": "X"}]), order("PO-2", supplier="S9"),
            order("PO-3", lines=[{"item_id": "B"}])]
    first, second, third = rules.check(page, store)  # type: ignore[arg-type]
    assert messages(first) == ["unknown item 'X' @ $.lines[1].item_id"]
    assert messages(second) == ["unknown supplier 'S9' @ $.supplier_id"]
    assert messages(third) == []
    assert sorted(entity for entity, _ in store.calls) == ["item", "location", "supplier"]
    assert dict(store.calls)["item"] == ["A", "B", "X"]


def test_composite_reference_pairs_fields_of_the_same_line() -> None:
    store = FakeStore(item_location={"A|P1": {}})
    rules = RuleSet("purchase_order", [
        Rule(kind="reference", key=["lines[*].item_id", "lines[*].location_id"], entity="item_location"),
    ])
    (verdict,) = rules.check([order(lines=[{"item_id": "A"}, {"item_id": "B"}])], store)  # type: ignore[arg-type]
    assert messages(verdict) == ["unknown item_location 'B|P1' @ $.lines[1].item_id"]


def test_item_location_validity_and_valid_from() -> None:
    store = FakeStore(item_location={"A|P1": {"valid_from": "2025-06-01"}, "B|P1": {}})
    rules = RuleSet("purchase_order", [
        Rule(kind="item_location", item="lines[*].item_id", location="lines[*].location_id", date="order_date"),
    ])
    (verdict,) = rules.check([order(lines=[{"item_id": "A"}, {"item_id": "B"}, {"item_id": "C"}])],
                             store)  # type: ignore[arg-type]
    assert messages(verdict) == [
        "item 'A' is valid at location 'P1' only from 2025-06-01, not on 2025-03-01 @ $.lines[0].item_id",
        "item 'C' is not valid at location 'P1' @ $.lines[2].item_id",
    ]
    on_stock = RuleSet("inventory_balance", [Rule(kind="item_location", message="not stocked here")])
    (verdict,) = on_stock.check([stock(item="C")], store)  # type: ignore[arg-type]
    assert messages(verdict) == ["not stocked here @ $.item_id"]


def test_custom_rules_registered_or_imported() -> None:
    def no_rush(data: dict[str, Any]):
        if data["supplier_id"] == "S1":
            yield Problem("supplier S1 takes no rush orders", "$.supplier_id")
        yield from ()

    register_rule("no-rush", no_rush)
    try:
        rules = RuleSet("purchase_order", [
            Rule(kind="custom", function="no-rush"),
            Rule(kind="custom", function="tests.mapping.test_rules:always_warn", severity="warn"),
        ])
        (verdict,) = rules.check([order()], None)
    finally:
        unregister_rule("no-rush")
    assert messages(verdict) == ["supplier S1 takes no rush orders @ $.supplier_id"]
    assert verdict.warnings == [Problem("checked by hand", "$")]


def always_warn(data: dict[str, Any]) -> list[str]:
    return ["checked by hand"]


RULES = """\
rules:
  inventory_balance:
    - {kind: range, field: on_hand, min: 0}
    - {kind: reference, field: item_id, entity: item}
    - {kind: range, field: onhand, min: 0}
    - {kind: reference, field: item_id}
    - {kind: range, field: on_hand}
    - {kind: custom, function: nowhere}
  stock:
    - {kind: required, field: x}
"""


def test_estate_rules_are_checked_with_lines(write_estate) -> None:
    text = VALID + RULES
    path = write_estate(text)
    problems = validate_estate_file(path, environ={})
    assert problems[0] == (f"{path}:{line_of(text, 'field: onhand')}:21: unknown field 'onhand' on InventoryBalance "
                           f"(fields: {', '.join(f.name for f in msgspec.structs.fields(InventoryBalance))}); "
                           "did you mean 'on_hand'? @ $.rules.inventory_balance[2].field")
    rest = [p.split(": ", 1)[1] for p in problems[1:]]
    assert rest == [
        "a reference rule needs entity @ $.rules.inventory_balance[3]",
        "a range rule needs min, max or both @ $.rules.inventory_balance[4]",
        "unknown custom rule 'nowhere': register it or name it as module:function (none registered) "
        "@ $.rules.inventory_balance[5].function",
        "unknown entity 'stock'" + rest[-1].removeprefix("unknown entity 'stock'"),
    ]
    assert rest[-1].endswith("@ $.rules.stock")


def test_the_example_rules_are_valid(write_estate) -> None:
    path = write_estate(VALID + RULES.split("    - {kind: range, field: onhand")[0])
    assert validate_estate_file(path, environ={}) == []
