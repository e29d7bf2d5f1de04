"""The building blocks every canonical record shares: a frozen msgspec Struct with a declared key.

Records are decoded and validated on the hot path of every flow, so they are msgspec Structs: typed, frozen,
fast to decode from JSON and to encode for hashing. Each entity declares

- ``entity``: its canonical name (``item``, ``inventory_balance``...), used in the store and the estate file;
- ``key_fields``: the fields whose values, joined by ``|``, make its canonical key;
- ``domain``: master, transactions, planning or events;
- ``references``: which of its fields (``lines.component_id`` for a field of each line) name another entity's key.

Quantities are :class:`Quantity` (a Decimal with its unit); timestamps must be timezone-aware and in UTC.

msgspec checks types and its own constraints while decoding; what it cannot express is checked in
``__post_init__``, which msgspec runs for every decoded struct, nested ones included, and reports with the path of
the failing struct (``... - at `$.lines[1]```):

- every timestamp is in UTC (a naive or non-UTC value names its field);
- every Decimal is finite (``"NaN"`` and ``"Infinity"`` parse as Decimals but poison sums), within its
  :class:`Bounds` when the type declares some (msgspec bounds only apply to int and float);
- key parts never contain the key separator, so a key always splits back into its parts.

Building a record in Python runs the same ``__post_init__`` checks, but not msgspec's type checks: records from
outside come in through ``msgspec.json.decode(..., type=...)`` or ``msgspec.convert``.

Decimals from JSON are exact: msgspec reads a JSON number (``0.1``) for a Decimal field straight from its text,
never through a binary float, and writes Decimals as strings (``"0.1"``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import operator
import typing
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Annotated, Any, ClassVar

import msgspec

KEY_SEPARATOR = "|"

DECIMAL_PATTERN = r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$"
"""A finite decimal as Decimal writes it: no NaN, no Infinity."""
NON_NEGATIVE_PATTERN = r"^(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$"

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
"""An identifier or code: non-empty, bounded."""

OptionalCode = Annotated[str, msgspec.Meta(max_length=128)]
"""A key part that may be empty: ``""`` means "none" or "all" (a lot-less balance, a global unit conversion)."""

CurrencyCode = Annotated[str, msgspec.Meta(min_length=3, max_length=3, pattern="^[A-Z]{3}$")]
"""An ISO 4217 currency code (EUR, USD)."""
CountryCode = Annotated[str, msgspec.Meta(min_length=2, max_length=2, pattern="^[A-Z]{2}$")]
"""An ISO 3166-1 alpha-2 country code (DE, US)."""

UtcDateTime = Annotated[
    dt.datetime, msgspec.Meta(tz=True, extra_json_schema={"pattern": r"(Z|[+-]00:00)$"})
]
"""A timezone-aware timestamp; records check that its offset is zero (UTC)."""


@dataclasses.dataclass(frozen=True)
class Bounds:
    """Bounds of a Decimal (or of a Quantity's value), checked after decoding."""

    ge: Decimal | None = None
    gt: Decimal | None = None
    le: Decimal | None = None

    def violation(self, value: Decimal) -> str | None:
        if self.ge is not None and value < self.ge:
            return f"must be >= {self.ge}"
        if self.gt is not None and value <= self.gt:
            return f"must be > {self.gt}"
        if self.le is not None and value > self.le:
            return f"must be <= {self.le}"
        return None


_NON_NEGATIVE_SCHEMA = msgspec.Meta(extra_json_schema={"pattern": NON_NEGATIVE_PATTERN})

NonNegative = Annotated[Decimal, Bounds(ge=Decimal(0)), _NON_NEGATIVE_SCHEMA]
Positive = Annotated[Decimal, Bounds(gt=Decimal(0)), _NON_NEGATIVE_SCHEMA]
Percent = Annotated[Decimal, Bounds(ge=Decimal(0), le=Decimal(100)), _NON_NEGATIVE_SCHEMA]


class ModelStruct(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every struct of the model: frozen, keyword-only, strict about unknown fields, checked after decoding."""

    def __post_init__(self) -> None:
        cls = type(self)
        checks = _CHECKS.get(cls)
        if checks is None:
            checks = _compile_checks(cls)
        for name, check in checks:
            value = getattr(self, name)
            if value is not None:
                check(name, value)


class Quantity(ModelStruct, frozen=True, kw_only=True):
    """An amount in a unit of measure. ``value`` is a Decimal, never a float, so sums stay exact."""

    value: Decimal
    unit: Code

    def __post_init__(self) -> None:  # the most decoded struct: checked directly, not through the generic plan
        if not self.value.is_finite():
            raise ValueError(f"value must be a finite decimal, got {self.value}")

    def __str__(self) -> str:
        return f"{self.value} {self.unit}"


PositiveQuantity = Annotated[Quantity, Bounds(gt=Decimal(0))]
NonNegativeQuantity = Annotated[Quantity, Bounds(ge=Decimal(0))]


class Line(ModelStruct, frozen=True, kw_only=True):
    """A part of a record carried in a list (order lines, BOM lines, routing operations): not an entity of its own."""


class Record(ModelStruct, frozen=True, kw_only=True):
    """Base of every canonical entity.

    Frozen is shallow: a record's lists (lines, dates) are plain lists, read-only by convention. To change a record,
    build a new one (``msgspec.structs.replace``).
    """

    entity: ClassVar[str] = ""
    key_fields: ClassVar[tuple[str, ...]] = ()
    domain: ClassVar[str] = ""
    references: ClassVar[dict[str, str]] = {}
    """Field path (``item_id``, ``lines.component_id``) -> name of the entity whose key it holds."""

    @property
    def key(self) -> str:
        """The canonical key: the key fields' values joined by ``|``."""
        getter = _KEY_GETTERS.get(type(self))
        if getter is None:
            getter = _KEY_GETTERS[type(self)] = operator.attrgetter(*self.key_fields, self.key_fields[0])
        parts = getter(self)[:-1]
        try:
            return KEY_SEPARATOR.join(parts)  # key fields are mostly text
        except TypeError:  # a date, a number
            return KEY_SEPARATOR.join([part if type(part) is str else _key_part(part) for part in parts])


_KEY_GETTERS: dict[type, operator.attrgetter[Any]] = {}
"""Per record class, a getter returning the key fields' values as a tuple (the last field repeated so that a
single-field key also comes back as a tuple)."""


def _key_part(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


# --- checks run after decoding --------------------------------------------------------------------------------

Check = Callable[[str, Any], None]
_CHECKS: dict[type, tuple[tuple[str, Check], ...]] = {}
_ZERO = dt.timedelta(0)
_UnionType = type(int | None)


def _check_utc(name: str, value: dt.datetime) -> None:
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"{name} must be timezone-aware and in UTC, got a naive datetime")
    if offset != _ZERO:
        raise ValueError(f"{name} must be in UTC, got offset {offset}")


def _check_finite(name: str, value: Decimal) -> None:
    if not value.is_finite():
        raise ValueError(f"{name} must be a finite decimal, got {value}")


def _decimal_check(bounds: Bounds | None, of_quantity: bool) -> Check:
    def check(name: str, value: Any) -> None:
        number = value.value if of_quantity else value
        if not number.is_finite():
            raise ValueError(f"{name} must be a finite decimal, got {number}")
        problem = bounds.violation(number) if bounds is not None else None
        if problem:
            raise ValueError(f"{name} {problem}, got {value}")

    if bounds is not None and not of_quantity and bounds.gt is None and bounds.le is None and bounds.ge is not None:
        ge = bounds.ge  # the common bound (NonNegative), compared inline

        def check_ge(name: str, value: Any) -> None:
            if not value.is_finite() or value < ge:
                check(name, value)

        return check_ge
    return check


def _check_key_part(name: str, value: str) -> None:
    if KEY_SEPARATOR in value:
        raise ValueError(f"{name} is part of the key and must not contain {KEY_SEPARATOR!r}, got {value!r}")


def _compile_checks(cls: type) -> tuple[tuple[str, Check], ...]:
    """The post-decode checks of ``cls``'s own fields (nested structs check themselves), computed once per class."""
    checks: list[tuple[str, Check]] = []
    key_fields = getattr(cls, "key_fields", ())
    for field in msgspec.structs.fields(cls):
        base, metadata = _unwrap(field.type)
        bounds = next((m for m in metadata if isinstance(m, Bounds)), None)
        if base is dt.datetime:
            checks.append((field.name, _check_utc))
        elif base is Decimal:
            checks.append((field.name, _check_finite if bounds is None else _decimal_check(bounds, False)))
        elif base is Quantity and bounds is not None:
            checks.append((field.name, _decimal_check(bounds, True)))
        if field.name in key_fields and base is str:
            checks.append((field.name, _check_key_part))
    found = tuple(checks)
    _CHECKS[cls] = found
    return found


def _unwrap(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    """The type under ``Annotated`` and ``| None``, with the Annotated metadata found on the way."""
    metadata: tuple[Any, ...] = ()
    while True:
        if typing.get_origin(hint) is Annotated:
            metadata += hint.__metadata__
            hint = typing.get_args(hint)[0]
            continue
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if typing.get_origin(hint) in (typing.Union, _UnionType) and len(args) == 1:
            hint = args[0]
            continue
        return hint, metadata


# --- helpers for entity-specific checks ----------------------------------------------------------------------


def check_period(start: dt.date | None, end: dt.date | None, start_name: str, end_name: str) -> None:
    """Raise when both ends of a period are given and the end comes before the start."""
    if start is not None and end is not None and end < start:
        raise ValueError(f"{end_name} ({end}) must not be before {start_name} ({start})")


def check_unique(values: Iterable[Any], what: str) -> None:
    """Raise naming the first repeated value (line ids, sequence numbers...)."""
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} must be unique, {value!r} appears more than once")
        seen.add(value)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
