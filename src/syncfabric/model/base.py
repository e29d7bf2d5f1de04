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
import typing
from collections.abc import Callable, Iterable
from decimal import Decimal
from functools import partial
from operator import attrgetter, is_not
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
        checker = _CHECKERS.get(type(self))
        if checker is None:
            checker = _compile_checker(type(self))
        checker(self)


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
        make = _KEY_MAKERS.get(type(self))
        if make is None:
            make = _KEY_MAKERS[type(self)] = _compile_key(type(self))
        return make(self)


_KEY_MAKERS: dict[type, Callable[[Any], str]] = {}
"""Per record class, the function that makes a record's key (compiled once: the key of every record is made on
the hot path of every flow)."""


def _key_part(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


_encode = msgspec.json.Encoder().encode


def _iso(value: dt.datetime) -> str:
    """``value.isoformat()``; for a timestamp in UTC (what record checks leave) from msgspec's RFC 3339 text, which
    differs only in writing ``Z`` for ``+00:00``, at a quarter of the cost (the key of every event has one)."""
    if value.tzinfo is _UTC:
        return _encode(value)[1:-2].decode() + "+00:00"
    return value.isoformat()


def _compile_key(cls: type) -> Callable[[Any], str]:
    """``KEY_SEPARATOR.join`` of the key fields' parts as one generated function: each field read once, a text
    field taken as it is and a timestamp ISO-formatted without a call through :func:`_key_part`."""
    hints = {field.name: _unwrap(field.type)[0] for field in msgspec.structs.fields(cls)}
    parts = []
    for index, name in enumerate(cls.key_fields):  # type: ignore[attr-defined]
        value = f"v{index}"
        if hints.get(name) is dt.datetime:
            parts.append(f"(_iso({value}) if ({value} := record.{name}).__class__ is _datetime else _part({value}))")
        else:
            parts.append(f"({value} if ({value} := record.{name}).__class__ is str else _part({value}))")
    source = f"def key(record):\n    return {KEY_SEPARATOR!r}.join(({', '.join(parts)},))\n"
    return _generated(source, "key", {"_iso": _iso, "_datetime": dt.datetime, "_part": _key_part})


def _generated(source: str, name: str, env: dict[str, Any]) -> Callable[[Any], Any]:
    namespace = dict(env)
    exec(compile(source, f"<syncfabric.model generated {name}>", "exec"), namespace)  # our own text, made above
    function: Callable[[Any], Any] = namespace[name]
    return function


# --- checks run after decoding --------------------------------------------------------------------------------

Check = Callable[[str, Any], None]
_CHECKS: dict[type, tuple[tuple[str, Check], ...]] = {}
_ZERO = dt.timedelta(0)
_UTC = dt.UTC
_UnionType = type(int | None)


def _check_utc(name: str, value: dt.datetime) -> None:
    if value.tzinfo is _UTC:  # what msgspec decodes ``Z`` and ``+00:00`` to
        return
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
    found = tuple((name, check) for name, check, _, _ in _field_checks(cls))
    _CHECKS[cls] = found
    return found


def _field_checks(cls: type) -> list[tuple[str, Check, str, Bounds | None]]:
    """Each check of ``cls``'s own fields: the field, the check, what it checks (``utc``, ``decimal``, ``quantity``
    or ``key_part``) and the bounds of a decimal or quantity."""
    checks: list[tuple[str, Check, str, Bounds | None]] = []
    key_fields = getattr(cls, "key_fields", ())
    for field in msgspec.structs.fields(cls):
        base, metadata = _unwrap(field.type)
        bounds = next((m for m in metadata if isinstance(m, Bounds)), None)
        if base is dt.datetime:
            checks.append((field.name, _check_utc, "utc", None))
        elif base is Decimal:
            checks.append((field.name, _check_finite if bounds is None else _decimal_check(bounds, False), "decimal",
                           bounds))
        elif base is Quantity and bounds is not None:
            checks.append((field.name, _decimal_check(bounds, True), "quantity", bounds))
        if field.name in key_fields and base is str:
            checks.append((field.name, _check_key_part, "key_part", None))
    return checks


_CHECKERS: dict[type, Callable[[Any], None]] = {}
"""Per struct class, its checks as one generated function (each field read once, no loop): run after every
decode."""


def _compile_checker(cls: type) -> Callable[[Any], None]:
    checks = _CHECKS.get(cls)
    if checks is None:
        checks = _compile_checks(cls)
    lines = ["def check(record):", "    pass"]
    env: dict[str, Any] = {}
    for index, (name, check) in enumerate(checks):
        env[f"c{index}"] = check
        lines += [f"    value = record.{name}", "    if value is not None:", f"        c{index}({name!r}, value)"]
    checker = _CHECKERS[cls] = _generated("\n".join(lines) + "\n", "check", env)
    return checker


# --- records decoded a page at a time -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class PageDecoding:
    """How to decode many records of one class at once with the same result as one by one: into ``unchecked``, a
    Struct with the class's fields, types, defaults and encoding but no ``__post_init__``, then ``passes`` runs the
    class's own checks over the whole list, field by field (one pass over each checked field). Records that pass
    encode to the same JSON as the class's records would; if ``passes`` is false, some record fails a check: decode
    them one by one into the class to learn which and why."""

    unchecked: type
    passes: Callable[[list[Any]], bool]
    keys: Callable[[list[Any]], list[str]]
    """The canonical key of each record."""


_PAGE_DECODINGS: dict[type, PageDecoding | None] = {}


def page_decoding(cls: type) -> PageDecoding | None:
    """The :class:`PageDecoding` of ``cls``, or ``None`` for a class whose checks are not only those of its fields
    (its own ``__post_init__``), or whose encoding a copy would not reproduce (tagged, array-like)."""
    if cls in _PAGE_DECODINGS:
        return _PAGE_DECODINGS[cls]
    found = _PAGE_DECODINGS[cls] = _page_decoding(cls)
    return found


def field_spec(cls: type) -> list[tuple[Any, ...]]:
    """The fields of Struct ``cls`` as :func:`msgspec.defstruct` takes them (name, type, default), to define a copy
    of it."""
    spec: list[tuple[Any, ...]] = []
    for field in msgspec.structs.fields(cls):
        if field.default is not msgspec.NODEFAULT:
            spec.append((field.name, field.type, field.default))
        elif field.default_factory is not msgspec.NODEFAULT:
            spec.append((field.name, field.type, msgspec.field(default_factory=field.default_factory)))
        else:
            spec.append((field.name, field.type))
    return spec


def _page_decoding(cls: type) -> PageDecoding | None:
    config = cls.__struct_config__  # type: ignore[attr-defined]
    if cls.__post_init__ is not ModelStruct.__post_init__ or config.tag is not None or config.array_like:  # type: ignore[attr-defined]
        return None
    fields = msgspec.structs.fields(cls)
    unchecked = msgspec.defstruct(
        f"Unchecked{cls.__name__}", field_spec(cls), kw_only=True, frozen=True, omit_defaults=config.omit_defaults,
        forbid_unknown_fields=config.forbid_unknown_fields, rename={f.name: f.encode_name for f in fields},
        module=__name__)
    if (unchecked.__struct_encode_fields__ != cls.__struct_encode_fields__  # type: ignore[attr-defined]
            or unchecked.__struct_fields__ != cls.__struct_fields__):  # type: ignore[attr-defined]
        return None
    optional = {field.name for field in fields if _optional(field.type)}
    checks = tuple((attrgetter(name), name in optional, name, check, kind, bounds)
                   for name, check, kind, bounds in _field_checks(cls))
    hints = {field.name: _unwrap(field.type)[0] for field in fields}
    keys = _page_keys(cls.key_fields, hints)  # type: ignore[attr-defined]

    def passes(records: list[Any]) -> bool:
        for get, optional, name, check, kind, bounds in checks:
            values = list(filter(_given, map(get, records)) if optional else map(get, records))
            if not values:
                continue
            try:
                if kind == "key_part":
                    if KEY_SEPARATOR in "".join(values):
                        return False
                elif kind == "decimal":
                    # min and max are finite only if every value is (a NaN fails the comparisons, an infinity
                    # is the min or the max), and within the bounds only if every value is
                    low, high = min(values), max(values)
                    if not (low.is_finite() and high.is_finite()) or (
                            bounds is not None and (bounds.violation(low) or bounds.violation(high))):
                        return False
                else:
                    for value in values:
                        check(name, value)
            except (ValueError, ArithmeticError, TypeError, AttributeError):  # a check fails
                return False
        return True

    return PageDecoding(unchecked, passes, keys)


_given = partial(is_not, None)


def _page_keys(key_fields: tuple[str, ...], hints: dict[str, Any]) -> Callable[[list[Any]], list[str]]:
    """The canonical keys of many records a key field at a time, as :attr:`Record.key` makes them one by one: a
    text column taken as it is, a timestamp column in UTC written by one encoding of the whole column (its ``Z``
    replaced by ``+00:00``, as ``isoformat`` writes it), anything else through :func:`_key_part`; the parts
    joined row by row in one call."""
    getters = [(attrgetter(name), hints.get(name)) for name in key_fields]
    join = KEY_SEPARATOR.join

    def column(records: list[Any], get: Callable[[Any], Any], hint: Any) -> list[str]:
        values = list(map(get, records))
        kinds = set(map(type, values))
        if kinds == {str}:
            return values
        if kinds == {dt.datetime} and hint is dt.datetime and set(map(_tzinfo, values)) == {_UTC}:
            return _TEXTS(_encode(values).replace(b'Z"', b'+00:00"'))
        return list(map(_key_part, values))

    def keys(records: list[Any]) -> list[str]:
        if not records or not getters:
            return [""] * len(records)
        if len(getters) == 1:
            return column(records, *getters[0])
        return list(map(join, zip(*(column(records, get, hint) for get, hint in getters), strict=True)))

    return keys


_tzinfo = attrgetter("tzinfo")
_TEXTS = msgspec.json.Decoder(list[str]).decode


def _optional(hint: Any) -> bool:
    """Whether a field of type ``hint`` may hold ``None``."""
    while typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    return hint is None or hint is type(None) or (
        typing.get_origin(hint) in (typing.Union, _UnionType) and type(None) in typing.get_args(hint)) or hint is Any


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
