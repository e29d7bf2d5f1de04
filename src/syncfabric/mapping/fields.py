"""Field maps: turn a system's raw record into a canonical record, reporting every problem with its path.

A mapping's ``fields`` gives, per canonical field, a source field name or dotted path, ``{const: VALUE}``, an
expression (:mod:`syncfabric.mapping.expressions`: defaults, concat, split, pad, code maps, xref, date-times,
functions), or a nested mapping for a nested record. A nested quantity with ``convert_to: UNIT`` (or ``convert_to:
base_unit``, the item's base unit from the estate's ``units:``) is converted and rounded. Empty source values count
as absent, so defaults apply and required fields are reported as missing. Problems read
``expected decimal, got 'abc' @ $.on_hand.value (column QTY)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from collections.abc import Mapping as MappingOf
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from syncfabric.config.schema import CodeMap, Estate, Mapping, Units
from syncfabric.errors import Problem, RecordError
from syncfabric.mapping.codes import CodeMaps
from syncfabric.mapping.expressions import (
    MISSING,
    Environment,
    ExpressionError,
    Getter,
    Scope,
    code_maps_used,
    compile_spec,
    is_expression,
    source_column,
)
from syncfabric.mapping.units import UnitError, UnitTable
from syncfabric.mapping.xref import XrefClaim
from syncfabric.model import Quantity, Record, entity_type
from syncfabric.model.base import Check, _compile_checks

_ANY_INDEX = re.compile(r"\[\d+\]")

Conversion = tuple[tuple[str, ...], str]
"""Where a nested quantity is (``("on_hand",)``) and the unit it converts to (a code, or ``base_unit``)."""


class FieldMap:
    """One compiled mapping: system record → canonical record of one entity."""

    def __init__(
        self,
        name: str,
        mapping: Mapping,
        *,
        units: Units | UnitTable | None = None,
        code_maps: MappingOf[str, CodeMap] | None = None,
        time_zones: Callable[[str], str | None] | None = None,
    ) -> None:
        self.name = name
        self.system = mapping.system
        self.mapping = mapping
        self.entity_cls: type[Record] = entity_type(mapping.entity)
        self.units = units if isinstance(units, UnitTable) else UnitTable(units)
        codes = CodeMaps(code_maps)
        env = Environment(system=mapping.system, code_maps=codes, time_zones=time_zones)
        self._conversions: list[Conversion] = []
        self._converted: dict[tuple[Any, str, str, str], tuple[str, str]] = {}
        self._getters = _nodes(_compile(mapping.fields, env, self._conversions))
        self._sources = dict(_source_columns(mapping.fields))
        self._fields = {field.name: field for field in msgspec.structs.fields(self.entity_cls)}
        self._quantities = [name for name, field in self._fields.items() if _mentions(field.type, Quantity)]
        self._checks: dict[str, list[Check]] = {}
        for field_name, check in _compile_checks(self.entity_cls):
            self._checks.setdefault(field_name, []).append(check)
        lineage = [f"{name}@{mapping.version}"]
        lineage += [f"{code}@{codes.version(code)}" for code in sorted(code_maps_used(mapping.fields)) if code in codes]
        if self._conversions:
            lineage.append(f"units@{self.units.version}")
        self.version = "+".join(lineage)
        """Mapping version with the versions of the code maps and unit table it uses: the lineage of a record."""

    @classmethod
    def for_estate(
        cls, estate: Estate, name: str, *, time_zones: Callable[[str], str | None] | None = None
    ) -> FieldMap:
        """Mapping ``name`` of the estate with the estate's unit table and code maps."""
        return cls(name, estate.mappings[name], units=estate.units, code_maps=estate.code_maps, time_zones=time_zones)

    def apply(self, raw: dict[str, Any]) -> Record:
        """The canonical record for ``raw``, or RecordError listing every problem found."""
        return self.map(raw)[0]

    def map(self, raw: dict[str, Any]) -> tuple[Record, list[XrefClaim]]:
        """The canonical record for ``raw`` with the cross-reference links it claims, or RecordError."""
        scope = Scope(raw)
        failed: dict[str, str] = {}
        data = _build(self._getters, scope, failed, "$")
        early = [Problem(message, self._at(path)) for path, message in failed.items()] if failed else []
        unit_problems = self._unit_problems(data) if self._quantities else []
        if self._conversions:
            early += [problem for problem in self._convert(data) if problem not in unit_problems]
        try:
            record = msgspec.convert(data, self.entity_cls, strict=False)
        except msgspec.ValidationError:
            later = [p for p in self._problems(data) if not _reported(p, failed)]
            raise RecordError(early + later + unit_problems, key=self._guess_key(data)) from None
        if early or unit_problems:
            raise RecordError(early + unit_problems, key=record.key)
        return record, scope.claims

    def _convert(self, data: dict[str, Any]) -> list[Problem]:
        problems = []
        converted = self._converted
        items = self.units.item_specific  # an item without its own conversions converts like any other
        for path, target in self._conversions:
            if len(path) == 1:  # a quantity field of the record itself: no walk needed
                item = data.get("item_id")
                found = [(data.get(path[0]), item if isinstance(item, str) else "", f"$.{path[0]}")]
            else:
                found = list(_walk(data, path, "", "$"))
            for quantity, item, at in found:
                if not isinstance(quantity, dict) or "value" not in quantity \
                        or not isinstance(quantity.get("unit"), str):
                    continue
                # The same quantity in the same unit comes back on many rows: its conversion is remembered.
                memo = (quantity["value"], quantity["unit"], target, item if item in items else "")
                done = converted.get(memo)
                if done is None:
                    try:
                        value = Decimal(str(quantity["value"]))
                    except InvalidOperation:
                        continue  # reported as not a decimal by the record's own checks
                    try:
                        to_unit = self.units.base_unit(item) if target == "base_unit" else target
                        done = (str(self.units.convert(value, quantity["unit"], to_unit, item)), to_unit)
                    except UnitError as exc:
                        problems.append(Problem(str(exc), self._at(f"{at}.unit")))
                        continue
                    if len(converted) >= _CONVERTED_KEPT:
                        converted.clear()
                    if memo[0].__class__ in (str, int):  # hashable and exact; floats are not remembered
                        converted[memo] = done
                quantity["value"], quantity["unit"] = done
        return problems

    def _unit_problems(self, data: dict[str, Any]) -> list[Problem]:
        problems = []
        for name in self._quantities:
            quantity = data.get(name)
            unit = quantity.get("unit") if isinstance(quantity, dict) else None
            if isinstance(unit, str) and unit not in self.units.known:
                problems.append(Problem(f"unknown unit {unit!r}", self._at(f"$.{name}.unit")))
        return problems

    def _problems(self, data: dict[str, Any]) -> list[Problem]:
        """Check field by field so that every problem is reported, not only the first."""
        problems = []
        for name, field in self._fields.items():
            if name not in data:
                if field.required:
                    problems.append(Problem("missing required field", self._at(f"$.{name}")))
                continue
            try:
                value = msgspec.convert(data[name], field.type, strict=False)
            except msgspec.ValidationError as exc:
                message, _, where = str(exc).partition(" - at `")
                path = f"$.{name}" + where.rstrip("`").removeprefix("$")
                problems.append(Problem(_humanize(message, _value_at(data, path)), self._at(path)))
                continue
            # The record's own checks of this field (bounds, UTC, key parts) run after decoding, which a problem
            # elsewhere in the record prevents: run them here, so that they are reported too, at the field.
            for check in self._checks.get(name, ()):
                try:
                    check(name, value)
                except ValueError as exc:
                    problems.append(Problem(str(exc), self._at(f"$.{name}")))
        if not problems:  # a rule that spans fields, raised from __post_init__
            try:
                msgspec.convert(data, self.entity_cls, strict=False)
            except msgspec.ValidationError as exc:
                problems.append(Problem(str(exc)))
        return problems

    def _at(self, path: str) -> str:
        column = self._sources.get(path) or self._sources.get(_ANY_INDEX.sub("[*]", path))
        return f"{path} (column {column})" if column else path

    def _guess_key(self, data: dict[str, Any]) -> str:
        parts = []
        for name in self.entity_cls.key_fields:
            field = self._fields[name]
            default = field.default if field.default is not msgspec.NODEFAULT else "?"
            parts.append(str(data.get(name, default)))
        return "|".join(parts)


@dataclass(frozen=True, slots=True)
class _Each:
    """A list field: one nested record per element of a source list (``lines: {each: ITEMS, fields: {...}}``)."""

    rows: Getter
    fields: dict[str, Any]


def _compile(spec: dict[str, Any], env: Environment, conversions: list[Conversion],
             at: tuple[str, ...] = ()) -> dict[str, Getter | dict[str, Any]]:
    compiled: dict[str, Any] = {}
    for target, source in spec.items():
        if isinstance(source, dict) and "each" in source:
            fields = source.get("fields") or {}
            compiled[target] = _Each(compile_spec(source["each"], env),
                                     _compile(fields, env, conversions, (*at, target, "*")))
        elif isinstance(source, dict) and not is_expression(source):
            nested = dict(source)
            if "convert_to" in nested:
                conversions.append(((*at, target), str(nested.pop("convert_to"))))
            compiled[target] = _compile(nested, env, conversions, (*at, target))
        else:
            compiled[target] = compile_spec(source, env)
    return compiled


_CONVERTED_KEPT = 65_536
"""Conversions remembered per field map (value, unit, target, item → converted value and unit); the memo starts
over when full, so memory stays bounded."""

_LEAF, _NESTED, _EACH, _COLUMN = 0, 1, 2, 3
Node = tuple[str, int, Any]
"""A compiled field: its target name, its kind and what computes it (a getter, nested nodes, or a list's rows and
nodes). A flat tuple per level, so that mapping a record does no type tests on the plan itself."""


def _nodes(compiled: dict[str, Any]) -> tuple[Node, ...]:
    nodes: list[Node] = []
    for target, getter in compiled.items():
        if isinstance(getter, _Each):
            nodes.append((target, _EACH, (getter.rows, _nodes(getter.fields))))
        elif isinstance(getter, dict):
            nodes.append((target, _NESTED, (_nodes(getter), "value" in getter)))
        elif isinstance(getattr(getter, "column", None), str):
            nodes.append((target, _COLUMN, getter.column))  # type: ignore[attr-defined]
        else:
            nodes.append((target, _LEAF, getter))
    return tuple(nodes)


def _build(nodes: tuple[Node, ...], scope: Scope, failed: dict[str, str], prefix: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    raw = scope.raw
    for target, kind, item in nodes:
        if kind == _COLUMN:  # a plain column, read in place (the getter it stands for does the same)
            value = raw.get(item)
            if value is None:
                continue
            if value.__class__ is str:
                value = value.strip()
                if not value:
                    continue
            data[target] = value
        elif kind == _LEAF:
            try:
                value = item(scope)
            except ExpressionError as exc:
                failed[f"{prefix}.{target}"] = str(exc)
                continue
            if value is MISSING or value is None:
                continue
            if isinstance(value, str):
                value = value.strip()
                if not value:
                    continue
            data[target] = value
        elif kind == _NESTED:
            children, has_value = item
            nested = _build(children, scope, failed, f"{prefix}.{target}")
            if nested and ("value" in nested or not has_value):  # a quantity without a value is absent
                data[target] = nested
        else:
            rows_of, children = item
            path = f"{prefix}.{target}"
            rows = rows_of(scope)
            if rows is MISSING:
                continue
            if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
                failed[path] = f"expected a list of records to map each of, got {type(rows).__name__}"
                continue
            # Each element is read with the record around it, so a line's spec can name a header field too.
            data[target] = [_build(children, Scope({**scope.raw, **row}, scope.claims), failed, f"{path}[{index}]")
                            for index, row in enumerate(rows)]
    return data


def _reported(problem: Problem, failed: dict[str, str]) -> bool:
    """Whether ``problem`` only repeats that a field which failed to compute is missing."""
    path = problem.path.split(" ")[0]
    missing = _MISSING_FIELD.fullmatch(problem.message)
    return path in failed or (missing is not None and f"{path}.{missing.group(1)}" in failed)


_MISSING_FIELD = re.compile(r"object missing required field `?([A-Za-z0-9_]+)`?")


def _walk(value: Any, path: tuple[str, ...], item: str, at: str) -> Iterator[tuple[Any, str, str]]:
    """Every value at ``path`` (``*`` for each element of a list) with its path and the item it is of: the
    ``item_id`` of the innermost record or line around it that has one."""
    if isinstance(value, dict) and isinstance(value.get("item_id"), str):
        item = value["item_id"]
    if not path:
        yield value, item, at
    elif path[0] == "*":
        for index, element in enumerate(value if isinstance(value, list) else []):
            yield from _walk(element, path[1:], item, f"{at}[{index}]")
    elif isinstance(value, dict):
        yield from _walk(value.get(path[0]), path[1:], item, f"{at}.{path[0]}")


def _source_columns(spec: dict[str, Any], prefix: str = "$") -> list[tuple[str, str]]:
    found = []
    for target, source in spec.items():
        path = f"{prefix}.{target}"
        column = source_column(source)
        if isinstance(source, dict) and "each" in source:
            found.extend(_source_columns(source.get("fields") or {}, f"{path}[*]"))
        elif column is not None:
            found.append((path, column))
        elif isinstance(source, dict) and not is_expression(source):
            found.extend(_source_columns(source, path))
    return found


def _mentions(hint: Any, cls: type) -> bool:
    import typing

    return hint is cls or any(_mentions(arg, cls) for arg in typing.get_args(hint))


def _value_at(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.removeprefix("$.").replace("]", "").replace("[", ".").split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _humanize(message: str, value: Any) -> str:
    text = message.replace("`", "")
    if text.startswith("Expected "):
        text = "expected " + text.removeprefix("Expected ")
    elif text[:1].isupper():
        text = text[0].lower() + text[1:]
    if value is not None and not isinstance(value, dict | list):
        text += f" (value {value!r})"
    return text
