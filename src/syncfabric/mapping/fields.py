"""Field maps: turn a system's raw record into a canonical record, reporting every problem with its path.

A mapping's ``fields`` gives, per canonical field, a source field name or dotted path, ``{const: VALUE}``, or a
nested mapping for a nested record. Empty source values count as absent, so defaults apply and required fields
are reported as missing. Problems read ``expected decimal, got 'abc' @ $.on_hand.value (column QTY)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from syncfabric.config.schema import Mapping
from syncfabric.errors import Problem, RecordError
from syncfabric.mapping.units import is_known_unit
from syncfabric.model import Quantity, Record, entity_type

_MISSING = object()
Getter = Callable[[dict[str, Any]], Any]


class FieldMap:
    """One compiled mapping: system record → canonical record of one entity."""

    def __init__(self, name: str, mapping: Mapping) -> None:
        self.name = name
        self.system = mapping.system
        self.entity_cls: type[Record] = entity_type(mapping.entity)
        self.version = f"{name}@{mapping.version}"
        self._getters = _compile(mapping.fields)
        self._sources = dict(_source_columns(mapping.fields))
        self._fields = {field.name: field for field in msgspec.structs.fields(self.entity_cls)}
        self._quantities = [name for name, field in self._fields.items() if _mentions(field.type, Quantity)]

    def apply(self, raw: dict[str, Any]) -> Record:
        """The canonical record for ``raw``, or RecordError listing every problem found."""
        data = _build(self._getters, raw)
        unit_problems = self._unit_problems(data)
        try:
            record = msgspec.convert(data, self.entity_cls, strict=False)
        except msgspec.ValidationError:
            raise RecordError(self._problems(data) + unit_problems, key=self._guess_key(data)) from None
        if unit_problems:
            raise RecordError(unit_problems, key=record.key)
        return record

    def _unit_problems(self, data: dict[str, Any]) -> list[Problem]:
        problems = []
        for name in self._quantities:
            quantity = data.get(name)
            unit = quantity.get("unit") if isinstance(quantity, dict) else None
            if isinstance(unit, str) and not is_known_unit(unit):
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
                msgspec.convert(data[name], field.type, strict=False)
            except msgspec.ValidationError as exc:
                message, _, where = str(exc).partition(" - at `")
                path = f"$.{name}" + where.rstrip("`").removeprefix("$")
                problems.append(Problem(_humanize(message, _value_at(data, path)), self._at(path)))
        if not problems:  # a rule that spans fields, raised from __post_init__
            try:
                msgspec.convert(data, self.entity_cls, strict=False)
            except msgspec.ValidationError as exc:
                problems.append(Problem(str(exc)))
        return problems

    def _at(self, path: str) -> str:
        column = self._sources.get(path)
        return f"{path} (column {column})" if column else path

    def _guess_key(self, data: dict[str, Any]) -> str:
        parts = []
        for name in self.entity_cls.key_fields:
            field = self._fields[name]
            default = field.default if field.default is not msgspec.NODEFAULT else "?"
            parts.append(str(data.get(name, default)))
        return "|".join(parts)


def _compile(spec: dict[str, Any]) -> dict[str, Getter | dict[str, Any]]:
    compiled: dict[str, Any] = {}
    for target, source in spec.items():
        if isinstance(source, str):
            compiled[target] = _path_getter(source)
        elif isinstance(source, dict) and set(source) == {"const"}:
            value = source["const"]
            compiled[target] = lambda _raw, value=value: value
        elif isinstance(source, dict):
            compiled[target] = _compile(source)
        else:
            compiled[target] = lambda _raw, value=source: value
    return compiled


def _path_getter(path: str) -> Getter:
    parts = path.split(".")

    def get(raw: dict[str, Any]) -> Any:
        if path in raw:
            return raw[path]
        value: Any = raw
        for part in parts:
            if not isinstance(value, dict) or part not in value:
                return _MISSING
            value = value[part]
        return value

    return get


def _build(getters: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for target, getter in getters.items():
        if isinstance(getter, dict):
            nested = _build(getter, raw)
            if nested:
                data[target] = nested
            continue
        value = getter(raw)
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                continue
        if value is _MISSING or value is None:
            continue
        data[target] = value
    return data


def _source_columns(spec: dict[str, Any], prefix: str = "$") -> list[tuple[str, str]]:
    found = []
    for target, source in spec.items():
        path = f"{prefix}.{target}"
        if isinstance(source, str):
            found.append((path, source))
        elif isinstance(source, dict) and set(source) != {"const"}:
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
