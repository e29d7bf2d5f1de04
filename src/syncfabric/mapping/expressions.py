"""Field specs beyond a plain source path: constants, defaults, concatenation, split, pad, code maps, ID
cross-reference, local date-times and registered functions.

A spec is a dict with one *source* and any *transforms*, applied in this order::

    source      from: COLUMN | const: VALUE | concat: [SPEC, ...] (sep: TEXT) | function: NAME (args: [SPEC, ...])
    transforms  default: VALUE                    when the source is absent or empty
                split: {sep: "/", index: 0}       one part of the text
                pad: {width: 8, fill: "0"}        left-pad (side: right to pad on the right)
                code_map: NAME                    translate through a code map of the estate
                xref: {entity: item, derive: {strip_prefix: "MAT-", remove: "-"}}
                datetime: {format: "%d.%m.%Y %H:%M", timezone: Europe/Berlin | location: SPEC}

Anything a spec lists (``concat`` parts, ``function`` args, the ``location`` of a date-time) is itself a spec, so a
plain string is always a source path and ``{const: X}`` always a constant. A failing step raises
:class:`ExpressionError`; the field map reports it at the field's path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syncfabric.mapping import functions
from syncfabric.mapping.codes import CodeMapError, CodeMaps
from syncfabric.mapping.xref import XrefClaim, XrefLookup, derive_key

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()
SOURCES = ("from", "const", "concat", "function")
TRANSFORMS = ("default", "split", "pad", "code_map", "xref", "datetime")
OPTIONS = {"concat": ("sep",), "function": ("args",)}


class ExpressionError(ValueError):
    """One field of one record could not be computed."""


@dataclass(slots=True)
class Scope:
    """What evaluating one record needs and produces besides the values."""

    raw: dict[str, Any]
    claims: list[XrefClaim] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Environment:
    """What compiling needs from the estate: the system mapped, its code maps, and location time zones."""

    system: str = ""
    code_maps: CodeMaps = field(default_factory=CodeMaps)
    time_zones: Callable[[str], str | None] | None = None
    direction: str = "inbound"
    """outbound: canonical record → system record; ``code_map`` translates through the inverse map, ``xref`` looks
    the system's id up, ``datetime`` formats a UTC date-time in the local zone (:mod:`syncfabric.mapping.outbound`)."""
    xref: XrefLookup | None = None
    """Outbound: the store's cross-reference, where ``xref`` looks the target system's ids up."""


Getter = Callable[[Scope], Any]


def is_expression(spec: Any) -> bool:
    return isinstance(spec, dict) and any(key in spec for key in (*SOURCES, *TRANSFORMS))


def compile_spec(spec: Any, env: Environment) -> Getter:
    if isinstance(spec, str):
        return _path(spec)
    if not is_expression(spec):
        return lambda _scope: spec
    getter = _source(spec, env)
    transforms = _TRANSFORM if env.direction != "outbound" else {**_TRANSFORM, **_outbound_transforms()}
    for name in TRANSFORMS:
        if name in spec:
            getter = transforms[name](getter, spec[name], env)
    return getter


def _outbound_transforms() -> dict[str, Callable[[Getter, Any, Environment], Getter]]:
    from syncfabric.mapping import outbound

    return outbound.TRANSFORMS


def code_maps_used(spec: Any) -> set[str]:
    """Names of the code maps a spec (or a nested mapping of specs) uses, for lineage."""
    if isinstance(spec, dict):
        found = {spec["code_map"]} if isinstance(spec.get("code_map"), str) else set()
        for value in spec.values():
            found |= code_maps_used(value)
        return found
    if isinstance(spec, list):
        return set().union(*(code_maps_used(value) for value in spec)) if spec else set()
    return set()


def source_column(spec: Any) -> str | None:
    """The source column a spec reads, when it reads exactly one (to name it in problems)."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict) and isinstance(spec.get("from"), str):
        return spec["from"]
    return None


# --- sources --------------------------------------------------------------------------------------------------


def _path(path: str) -> Getter:
    parts = path.split(".")
    if len(parts) == 1:  # a plain column, the common case: one lookup, _present inlined

        def column(scope: Scope) -> Any:
            value = scope.raw.get(path)
            if value is None:
                return MISSING
            if value.__class__ is str:
                value = value.strip()
                return value if value else MISSING
            return value

        column.column = path  # type: ignore[attr-defined]  # the field plan reads such a column in place
        return column

    def get(scope: Scope) -> Any:
        raw = scope.raw
        if path in raw:
            return _present(raw[path])
        value: Any = raw
        for part in parts:
            if not isinstance(value, dict) or part not in value:
                return MISSING
            value = value[part]
        return _present(value)

    return get


def _present(value: Any) -> Any:
    if value is None:
        return MISSING
    if isinstance(value, str):
        value = value.strip()
        return value if value else MISSING
    return value


def _source(spec: dict[str, Any], env: Environment) -> Getter:
    if "from" in spec:
        return compile_spec(spec["from"], env) if isinstance(spec["from"], str) else _invalid("from needs a path")
    if "const" in spec:
        value = spec["const"]
        return lambda _scope: value
    if "concat" in spec:
        parts = [compile_spec(part, env) for part in spec["concat"]]
        sep = str(spec.get("sep", ""))

        def concat(scope: Scope) -> Any:
            values = [part(scope) for part in parts]
            present = [str(value) for value in values if value is not MISSING]
            return sep.join(present) if present else MISSING

        return concat
    if "function" in spec:
        name = spec["function"]
        args = [compile_spec(arg, env) for arg in spec.get("args", [])]

        def call(scope: Scope) -> Any:
            values = [arg(scope) for arg in args]
            if any(value is MISSING for value in values):
                return MISSING
            try:
                function = functions.get(name)
            except LookupError as exc:
                raise ExpressionError(str(exc.args[0])) from None
            try:
                return _present(function(*values))
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise ExpressionError(f"function {name!r} failed: {exc}") from None

        return call
    return lambda _scope: MISSING  # transforms only: default supplies the value


def _invalid(message: str) -> Getter:
    def fail(_scope: Scope) -> Any:
        raise ExpressionError(message)

    return fail


# --- transforms -----------------------------------------------------------------------------------------------


def _default(inner: Getter, default: Any, _env: Environment) -> Getter:
    return lambda scope: default if (value := inner(scope)) is MISSING else value


def present_only(step: Callable[[Any, Scope], Any]) -> Callable[[Getter], Getter]:
    def wrap(inner: Getter) -> Getter:
        def get(scope: Scope) -> Any:
            value = inner(scope)
            return MISSING if value is MISSING else step(value, scope)

        return get

    return wrap


def _split(inner: Getter, spec: dict[str, Any], _env: Environment) -> Getter:
    sep, index = str(spec.get("sep", " ")), int(spec.get("index", 0))

    def step(value: Any, _scope: Scope) -> Any:
        parts = str(value).split(sep)
        if not -len(parts) <= index < len(parts):
            raise ExpressionError(f"cannot take part {index} of {value!r} split by {sep!r}")
        return _present(parts[index])

    return present_only(step)(inner)


def _pad(inner: Getter, spec: dict[str, Any], _env: Environment) -> Getter:
    width, fill, right = int(spec.get("width", 0)), str(spec.get("fill", "0")), spec.get("side") == "right"
    return present_only(lambda value, _scope: str(value).ljust(width, fill) if right
                         else str(value).rjust(width, fill))(inner)


def _code_map(inner: Getter, name: str, env: Environment) -> Getter:
    return coded(inner, lambda value: env.code_maps.translate(name, value))


def coded(inner: Getter, translate: Callable[[Any], Any]) -> Getter:
    """``inner``'s value translated through a code map (either way); an unmapped code is the field's problem."""

    def step(value: Any, _scope: Scope) -> Any:
        try:
            return translate(value)
        except CodeMapError as exc:
            raise ExpressionError(str(exc)) from None

    return present_only(step)(inner)


def _xref(inner: Getter, spec: dict[str, Any], env: Environment) -> Getter:
    entity, rules = str(spec.get("entity", "")), spec.get("derive") or {}
    derived: dict[str, str] = {}  # the same item comes back on many rows (one per location, per line)

    def step(value: Any, scope: Scope) -> Any:
        external = str(value)
        key = derived.get(external)
        if key is None:
            try:
                key = derive_key(external, rules)
            except ValueError as exc:
                raise ExpressionError(str(exc)) from None
            if len(derived) >= _DERIVED_KEPT:
                derived.clear()
            derived[external] = key
        scope.claims.append(XrefClaim(env.system, entity, external, key))
        return key

    return present_only(step)(inner)


_DERIVED_KEPT = 65_536
"""Derived keys remembered per xref spec; the memo starts over when full, so memory stays bounded."""


def _datetime(inner: Getter, spec: dict[str, Any], env: Environment) -> Getter:
    fmt = spec.get("format")
    zone = zone_of(spec, env)

    def step(value: Any, scope: Scope) -> Any:
        if isinstance(value, dt.datetime):
            moment = value
        else:
            try:
                moment = (dt.datetime.strptime(str(value), fmt) if fmt
                          else dt.datetime.fromisoformat(str(value)))
            except ValueError:
                expected = f"format {fmt!r}" if fmt else "an ISO 8601 date-time"
                raise ExpressionError(f"expected a date-time in {expected}, got {value!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone(scope))
        return moment.astimezone(dt.UTC)

    return present_only(step)(inner)


def zone_of(spec: dict[str, Any], env: Environment) -> Callable[[Scope], ZoneInfo]:
    """The time zone of a ``datetime:`` spec for one record: its ``timezone``, or its location's, or UTC."""
    zone_name = spec.get("timezone")
    location = compile_spec(spec["location"], env) if "location" in spec else None

    def zone(scope: Scope) -> ZoneInfo:
        name = zone_name
        if location is not None:
            site = location(scope)
            if site is MISSING:
                raise ExpressionError("no location to take the time zone from")
            name = env.time_zones(str(site)) if env.time_zones is not None else None
            if name is None:
                raise ExpressionError(f"no time zone known for location {site!r}")
        try:
            return ZoneInfo(name or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise ExpressionError(f"unknown time zone {name!r}") from None

    return zone


_TRANSFORM: dict[str, Callable[[Getter, Any, Environment], Getter]] = {
    "default": _default, "split": _split, "pad": _pad, "code_map": _code_map, "xref": _xref, "datetime": _datetime,
}
