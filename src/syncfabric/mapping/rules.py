"""Data-quality rules: checks on canonical records after mapping, declared per entity in the estate (``rules:``).

A rule with severity ``reject`` sends a record to quarantine; ``warn`` lets it pass, flagged and counted in the
run. Violations read like mapping problems, located by a JSON path into the canonical record:
``quantity must be ≥ 0 @ $.lines[2].quantity``.

Rules that look at master data (``reference``, ``item_location``) are checked a page at a time: the keys every
record of the page refers to are gathered first, then read with one :meth:`Store.get_many` per referenced entity.

Custom rules are plain functions taking the record as built-in Python data (``dict``) and returning the problems
found (:class:`~syncfabric.errors.Problem` or text). They are registered explicitly with :func:`register_rule`, or
named in the estate as ``module:function``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import msgspec

from syncfabric.config.schema import Rule
from syncfabric.errors import Problem
from syncfabric.model import Record

if TYPE_CHECKING:
    from syncfabric.store import Store

CustomRule = Callable[[dict[str, Any]], Iterable[Problem | str]]
_REGISTRY: dict[str, CustomRule] = {}
_MISSING: Any = object()
_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\*|\d+)\]")


def register_rule(name: str, function: CustomRule) -> CustomRule:
    """Make ``function`` available to estates as ``{kind: custom, function: NAME}``."""
    _REGISTRY[name] = function
    return function


def unregister_rule(name: str) -> None:
    _REGISTRY.pop(name, None)


def resolve_function(name: str) -> CustomRule:
    """A registered rule, or ``module:function`` imported. Raises LookupError saying what is wrong."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    module_name, colon, attribute = name.partition(":")
    if not colon or not module_name or not attribute:
        known = ", ".join(sorted(_REGISTRY)) or "none registered"
        raise LookupError(f"unknown custom rule {name!r}: register it or name it as module:function ({known})")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise LookupError(f"custom rule {name!r} cannot be loaded: {exc}") from None
    if not callable(function):
        raise LookupError(f"custom rule {name!r} is not a function")
    return function


@dataclass(frozen=True, slots=True)
class Violation:
    problem: Problem
    severity: str

    @property
    def rejects(self) -> bool:
        return self.severity == "reject"


@dataclass(slots=True)
class Verdict:
    """What the rules found on one record."""

    violations: list[Violation] = field(default_factory=list)

    @property
    def rejected(self) -> list[Problem]:
        return [v.problem for v in self.violations if v.rejects]

    @property
    def warnings(self) -> list[Problem]:
        return [v.problem for v in self.violations if not v.rejects]


def describe(problem: Problem, *, system: str, key: str) -> str:
    """A violation as quarantine and run history show it: ``… @ $.lines[2].quantity (system erp-na, key PO-4711)``."""
    return f"{problem} (system {system}, key {key})"


# -- paths ----------------------------------------------------------------------------------------------------------

Binding = tuple[int, ...]


def parse_path(path: str) -> list[str | int | None]:
    """``lines[*].quantity`` → ``["lines", None, "quantity"]``: None stands for every element of a list."""
    parts: list[str | int | None] = []
    position = 0
    text = path.removeprefix("$").removeprefix(".")
    for match in _SEGMENT.finditer(text):
        if text[position:match.start()] not in ("", "."):
            raise ValueError(f"invalid field path {path!r}")
        name, index = match.groups()
        parts.append(name if name is not None else (None if index == "*" else int(index)))
        position = match.end()
    if not parts or text[position:]:
        raise ValueError(f"invalid field path {path!r}")
    return parts


def expand(data: Any, parts: Sequence[str | int | None]) -> Iterator[tuple[str, Any, Binding]]:
    """Every (concrete path, value, list indices taken) a path reaches; a missing field yields ``_MISSING``."""

    def walk(value: Any, at: int, where: str, binding: Binding) -> Iterator[tuple[str, Any, Binding]]:
        if at == len(parts):
            yield where, value, binding
            return
        part = parts[at]
        if isinstance(part, str):
            if not isinstance(value, dict):
                return
            child = value.get(part)
            here = f"{where}.{part}"
            if child is None:
                if at == len(parts) - 1:
                    yield here, _MISSING, binding
                return
            yield from walk(child, at + 1, here, binding)
        elif isinstance(value, list):
            indices = range(len(value)) if part is None else [part] if part < len(value) else []
            for index in indices:
                yield from walk(value[index], at + 1, f"{where}[{index}]", (*binding, index))

    yield from walk(data, 0, "$", ())


def _field_name(path: str) -> str:
    return re.sub(r"\[\d+\]$", "", path.rsplit(".", 1)[-1])


def _number(value: Any) -> Decimal | None:
    if isinstance(value, dict) and "value" in value:  # a quantity
        value = value["value"]
    if isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _plain(number: Decimal) -> str:
    return str(number.to_integral_value()) if number == number.to_integral_value() else str(number.normalize())


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


# -- compiled rules -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lookup:
    """A key a record refers to, to be checked once the page's references are read."""

    entity: str
    key: str
    path: str
    rule: _Compiled
    extra: Any = None


class _Compiled:
    looks_up = False
    """Whether the rule reads master data from the store (``lookups``/``judge``)."""

    def __init__(self, spec: Rule) -> None:
        self.spec = spec
        self.severity = spec.severity

    def check(self, data: dict[str, Any]) -> Iterable[Problem]:
        return ()

    def lookups(self, data: dict[str, Any]) -> Iterator[Lookup]:
        return iter(())

    def judge(self, lookup: Lookup, found: Mapping[str, Any]) -> Problem | None:
        return None

    def problem(self, message: str, path: str) -> Problem:
        return Problem(self.spec.message or message, path)


class _Required(_Compiled):
    def __init__(self, spec: Rule) -> None:
        super().__init__(spec)
        assert spec.field is not None
        self.parts = parse_path(spec.field)

    def check(self, data: dict[str, Any]) -> Iterator[Problem]:
        for path, value, _ in expand(data, self.parts):
            if value is _MISSING or value == "" or value == []:
                yield self.problem(f"{_field_name(path)} is required", path)


class _Range(_Compiled):
    def __init__(self, spec: Rule) -> None:
        super().__init__(spec)
        assert spec.field is not None
        self.parts = parse_path(spec.field)
        self.low = None if spec.min is None else Decimal(str(spec.min))
        self.high = None if spec.max is None else Decimal(str(spec.max))
        self.simple = all(isinstance(part, str) for part in self.parts)
        self.where = "$." + ".".join(str(part) for part in self.parts)

    def check(self, data: dict[str, Any]) -> Iterable[Problem]:
        if not self.simple:
            return (problem for path, value, _ in expand(data, self.parts) if value is not _MISSING
                    and (problem := self._judge(value, path)) is not None)
        value: Any = data  # a path without lists reaches one value: looked up directly, the common case
        for part in self.parts:
            value = value.get(part) if isinstance(value, dict) else None
        problem = None if value is None else self._judge(value, self.where)
        return () if problem is None else (problem,)

    def _judge(self, value: Any, path: str) -> Problem | None:
        number = _number(value)
        if number is None:
            return self.problem(f"{_field_name(path)} must be a number, got {value!r}", path)
        if self.low is not None and number < self.low:
            return self.problem(f"{_field_name(path)} must be ≥ {_plain(self.low)}", path)
        if self.high is not None and number > self.high:
            return self.problem(f"{_field_name(path)} must be ≤ {_plain(self.high)}", path)
        return None


def _keys(data: dict[str, Any], paths: Sequence[list[str | int | None]]) -> Iterator[tuple[str, str]]:
    """(first field's concrete path, key) for each combination of the fields; a line's fields pair up with the same
    line's, a header field with every line. Combinations with a missing part are skipped (``required`` covers them)."""
    others = [list(expand(data, parts)) for parts in paths[1:]]
    for path, value, binding in expand(data, paths[0]):
        if value is _MISSING:
            continue
        values = [str(value)]
        for expanded in others:
            match = next((v for _, v, b in expanded if b == binding[:len(b)] or binding == b[:len(binding)]), _MISSING)
            if match is _MISSING:
                break
            values.append(str(match))
        else:
            yield path, "|".join(values)


class _Reference(_Compiled):
    looks_up = True

    def __init__(self, spec: Rule) -> None:
        super().__init__(spec)
        assert spec.entity is not None
        self.entity = spec.entity
        fields = list(spec.key) or ([spec.field] if spec.field else [])
        self.paths = [parse_path(f) for f in fields]

    def lookups(self, data: dict[str, Any]) -> Iterator[Lookup]:
        for path, key in _keys(data, self.paths):
            yield Lookup(self.entity, key, path, self)

    def judge(self, lookup: Lookup, found: Mapping[str, Any]) -> Problem | None:
        if lookup.key in found:
            return None
        return self.problem(f"unknown {self.entity} {lookup.key!r}", lookup.path)


class _ItemLocation(_Compiled):
    looks_up = True

    def __init__(self, spec: Rule) -> None:
        super().__init__(spec)
        self.paths = [parse_path(spec.item), parse_path(spec.location)]
        self.date = None if spec.date is None else parse_path(spec.date)

    def lookups(self, data: dict[str, Any]) -> Iterator[Lookup]:
        when = None
        if self.date is not None:
            when = next((_date(v) for _, v, _ in expand(data, self.date) if v is not _MISSING), None)
        for path, key in _keys(data, self.paths):
            yield Lookup("item_location", key, path, self, when)

    def judge(self, lookup: Lookup, found: Mapping[str, Any]) -> Problem | None:
        item, _, location = lookup.key.partition("|")
        row = found.get(lookup.key)
        if row is None:
            return self.problem(f"item {item!r} is not valid at location {location!r}", lookup.path)
        if lookup.extra is not None and row.payload:
            valid_from = _date(msgspec.json.decode(row.payload).get("valid_from"))
            if valid_from is not None and lookup.extra < valid_from:
                return self.problem(f"item {item!r} is valid at location {location!r} only from {valid_from}, "
                                    f"not on {lookup.extra}", lookup.path)
        return None


class _Custom(_Compiled):
    def __init__(self, spec: Rule) -> None:
        super().__init__(spec)
        assert spec.function is not None
        self.function = resolve_function(spec.function)

    def check(self, data: dict[str, Any]) -> Iterator[Problem]:
        for found in self.function(data) or ():
            problem = found if isinstance(found, Problem) else Problem(str(found))
            yield Problem(self.spec.message, problem.path) if self.spec.message else problem


_KINDS: dict[str, type[_Compiled]] = {
    "required": _Required, "range": _Range, "reference": _Reference, "item_location": _ItemLocation,
    "custom": _Custom,
}


def compile_rule(spec: Rule) -> _Compiled:
    return _KINDS[spec.kind](spec)


class RuleSet:
    """The compiled rules of one entity."""

    def __init__(self, entity: str, rules: Sequence[Rule] = ()) -> None:
        self.entity = entity
        self._rules = [compile_rule(rule) for rule in rules]

    def __bool__(self) -> bool:
        return bool(self._rules)

    @classmethod
    def for_entity(cls, rules: Mapping[str, Sequence[Rule]], entity: str) -> RuleSet:
        return cls(entity, rules.get(entity, ()))

    def check(self, records: Sequence[Record], store: Store | None) -> list[Verdict]:
        """One verdict per record, in order. References are read from ``store`` once per entity for the page."""
        verdicts = [Verdict() for _ in records]
        if not self._rules:
            return verdicts
        pending: list[tuple[int, Lookup]] = []
        for index, record in enumerate(records):
            data = msgspec.to_builtins(record)
            violations = verdicts[index].violations
            for rule in self._rules:
                for problem in rule.check(data):
                    violations.append(Violation(problem, rule.severity))
                if rule.looks_up:
                    pending.extend((index, lookup) for lookup in rule.lookups(data))
        if pending:
            wanted: dict[str, set[str]] = {}
            for _, lookup in pending:
                wanted.setdefault(lookup.entity, set()).add(lookup.key)
            found = {
                entity: (store.get_many(entity, sorted(keys)) if store is not None else {})
                for entity, keys in wanted.items()
            }
            for index, lookup in pending:
                problem = lookup.rule.judge(lookup, found[lookup.entity])
                if problem is not None:
                    verdicts[index].violations.append(Violation(problem, lookup.rule.severity))
        return verdicts


__all__ = ["CustomRule", "RuleSet", "Verdict", "Violation", "describe", "register_rule", "resolve_function"]
