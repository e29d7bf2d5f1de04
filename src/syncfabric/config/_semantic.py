"""Checks across the estate, once it has the right shape: do names refer to things that exist?

Flows name systems, entities and mappings; mappings name fields of canonical entities; systems name connector
kinds whose own configuration their ``connection`` must satisfy. Each problem is located at the reference that
is wrong, and says what would have been right.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from syncfabric.config._findings import Finding, JsonPath, show
from syncfabric.config._secrets import without_inline_secrets
from syncfabric.config._structure import unknown_field
from syncfabric.config.schema import Estate, Flow, Rule, System
from syncfabric.connectors import registry
from syncfabric.model import ENTITIES

_STORE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _bus(url: str) -> list[Finding]:
    from syncfabric.bus import parse_bus_url
    from syncfabric.errors import ConfigError

    try:
        parse_bus_url(url)
    except ConfigError as exc:
        return [Finding(problem, ("bus",)) for problem in exc.problems]
    return []


def semantic_findings(estate: Estate) -> list[Finding]:
    findings: list[Finding] = []
    if not _STORE_URL.match(estate.store):
        findings.append(Finding("expected a store URL such as sqlite:///path/to.db or postgresql://host/db",
                                ("store",)))
    if estate.bus is not None:
        findings.extend(_bus(estate.bus))
    for name, system in estate.systems.items():
        findings.extend(_system(name, system))
    for name, domain in estate.domains.items():
        path: JsonPath = ("domains", name)
        findings.extend(_entity(domain.entity, (*path, "entity")))
        findings.extend(_cron(domain.schedule, (*path, "schedule")))
    for name, mapping in estate.mappings.items():
        path = ("mappings", name)
        findings.extend(_reference("system", mapping.system, estate.systems, (*path, "system")))
        entity = ENTITIES.get(mapping.entity)
        if entity is None:
            findings.extend(_entity(mapping.entity, (*path, "entity")))
        elif mapping.direction == "outbound":
            findings.extend(_outbound_fields(estate, mapping.fields, entity, (*path, "fields")))
        else:
            findings.extend(_fields(mapping.fields, entity, f"entity {mapping.entity!r}", (*path, "fields"),
                                    _Known(set(estate.code_maps), _unit_codes(estate))))
    for name, flow in estate.flows.items():
        findings.extend(_flow(estate, flow, ("flows", name)))
    findings.extend(_units(estate))
    for entity_name, rules in estate.rules.items():
        findings.extend(_rules(entity_name, rules, ("rules", entity_name)))
    return findings


_RULE_NEEDS: dict[str, tuple[str, ...]] = {
    "required": ("field",), "range": ("field",), "reference": ("entity",), "item_location": (), "custom": ("function",),
}


def _rules(entity_name: str, rules: list[Rule], path: JsonPath) -> Iterator[Finding]:
    entity = ENTITIES.get(entity_name)
    if entity is None:
        yield from _entity(entity_name, path)
        return
    for index, rule in enumerate(rules):
        here = (*path, index)
        for option in _RULE_NEEDS[rule.kind]:
            if getattr(rule, option) is None:
                yield Finding(f"a {rule.kind} rule needs {option}", here)
        if rule.kind == "range":
            if rule.min is None and rule.max is None:
                yield Finding("a range rule needs min, max or both", here)
            for bound in ("min", "max"):
                value = getattr(rule, bound)
                if isinstance(value, str) and not re.fullmatch(r"-?\d+(\.\d+)?", value.strip()):
                    yield Finding(f"expected a number, got {show(value)}", (*here, bound))
        if rule.kind == "reference":
            if rule.entity is not None:
                yield from _entity(rule.entity, (*here, "entity"))
            if rule.field is None and not rule.key:
                yield Finding("a reference rule needs field (or key, a list of fields)", here)
        checked: list[tuple[str, JsonPath]] = []
        if rule.field is not None:
            checked.append((rule.field, (*here, "field")))
        checked.extend((name, (*here, "key", i)) for i, name in enumerate(rule.key))
        if rule.kind == "item_location":
            checked.extend([(rule.item, (*here, "item")), (rule.location, (*here, "location"))])
            if rule.date is not None:
                checked.append((rule.date, (*here, "date")))
        for field_path, at in checked:
            if (problem := _field_path_problem(entity, field_path)) is not None:
                yield Finding(problem, at)
        if rule.kind == "custom" and rule.function is not None:
            from syncfabric.mapping.rules import resolve_function

            try:
                resolve_function(rule.function)
            except LookupError as error:
                yield Finding(str(error), (*here, "function"))


def _field_path_problem(record: type, field_path: str) -> str | None:
    """Why a rule's field path does not lead to a field of the record, or None when it does."""
    from syncfabric.mapping.rules import parse_path

    try:
        parts = parse_path(field_path)
    except ValueError as error:
        return str(error)
    current: Any = record
    for part in parts:
        if part is None or isinstance(part, int):
            item = _list_item(current)
            if item is None:
                return f"{field_path!r}: [*] follows a field that is not a list"
            current = item
            continue
        struct = _struct_in(current) if not (isinstance(current, type) and issubclass(current, msgspec.Struct)) \
            else current
        if struct is None:
            return f"{field_path!r}: {part!r} follows a field that is not a nested record"
        known = {f.encode_name: f.type for f in msgspec.structs.fields(struct)}
        if part not in known:
            return (f"unknown field {part!r} on {struct.__name__} (fields: {', '.join(known)})"
                    + _did_you_mean(part, known))
        current = known[part]
    return None


def _list_item(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _list_item(typing.get_args(hint)[0])
    if origin is list:
        return typing.get_args(hint)[0]
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if (found := _list_item(arg)) is not None:
                return found
    return None


def _flow(estate: Estate, flow: Flow, path: JsonPath) -> Iterator[Finding]:
    yield from _reference("system", flow.system, estate.systems, (*path, "system"))
    for index, entity in enumerate(flow.entities):
        yield from _entity(entity, (*path, "entities", index))
    if flow.direction == "inbound":
        if len(flow.entities) != 1:
            yield Finding(f"an inbound flow moves exactly one entity, got {len(flow.entities)}", (*path, "entities"))
        if flow.mapping is None:
            yield Finding("an inbound flow needs a mapping (mapping: NAME)", path)
    yield from _cron(flow.schedule, (*path, "schedule"))
    yield from _source(estate, flow, path)
    if flow.watermark is not None and (flow.direction != "inbound" or flow.mode != "changes"):
        yield Finding("a watermark applies to inbound flows in mode: changes only", (*path, "watermark"))
    if flow.mode == "plan_cut" and flow.direction != "outbound":
        yield Finding("mode: plan_cut is for outbound flows (inbound: full or changes)", (*path, "mode"))
    if flow.mapping is None:
        return
    mapping = estate.mappings.get(flow.mapping)
    if mapping is None:
        yield from _reference("mapping", flow.mapping, estate.mappings, (*path, "mapping"))
        return
    if mapping.system != flow.system:
        yield Finding(f"mapping {flow.mapping!r} is for system {mapping.system!r}, but this flow's system is "
                      f"{flow.system!r}", (*path, "mapping"))
    if mapping.entity not in flow.entities:
        moves = ", ".join(repr(entity) for entity in flow.entities)
        yield Finding(f"mapping {flow.mapping!r} produces entity {mapping.entity!r}, but this flow moves {moves}",
                      (*path, "mapping"))
    if mapping.direction != flow.direction:
        yield Finding(f"mapping {flow.mapping!r} is an {mapping.direction} mapping, but this flow is "
                      f"{flow.direction}" + ("" if flow.direction == "inbound" else ": give the mapping "
                                             "direction: outbound"), (*path, "mapping"))


def _outbound_fields(estate: Estate, fields: dict[str, Any], entity: type, path: JsonPath) -> Iterator[Finding]:
    """An outbound mapping's specs read canonical fields of its entity; its code maps must be invertible."""
    from syncfabric.mapping.codes import CodeMaps
    from syncfabric.mapping.validation import outbound_problems

    for message, where in outbound_problems(fields, entity, CodeMaps(estate.code_maps), set(ENTITIES)):
        yield Finding(message, (*path, *where))


def _source(estate: Estate, flow: Flow, path: JsonPath) -> Iterator[Finding]:
    """What the connector kind finds wrong with an inbound flow's source (a table without a watermark for mode
    changes, an endpoint that is not configured), once the system's connection is valid."""
    system = estate.systems.get(flow.system)
    if flow.direction != "inbound" or system is None or system.kind not in registry.KINDS or not flow.entities:
        return
    try:
        connector = registry.connector_class(system.kind)
        config = msgspec.convert(without_inline_secrets(system.connection), connector.config_type, strict=False)
    except (ImportError, AttributeError, msgspec.ValidationError):
        return  # reported with the system
    at = (*path, "source") if flow.source is not None else path
    for problem in connector.source_problems(config, flow.source or flow.entities[0], flow.mode):
        yield Finding(problem, at)


def _system(name: str, system: System) -> Iterator[Finding]:
    path: JsonPath = ("systems", name)
    if system.kind not in registry.KINDS:
        yield Finding(f"unknown system kind {system.kind!r} (known: {', '.join(sorted(registry.KINDS))})"
                      + _did_you_mean(system.kind, registry.KINDS), (*path, "kind"))
        return
    try:
        connector = registry.connector_class(system.kind)
    except (ImportError, AttributeError) as error:
        yield Finding(f"connector kind {system.kind!r} cannot be loaded: {error}", (*path, "kind"))
        return
    config_type = getattr(connector, "config_type", None)
    if config_type is not None:
        try:
            msgspec.convert(without_inline_secrets(system.connection), config_type, strict=False)
        except msgspec.ValidationError as error:
            yield msgspec_finding(error, config_type, (*path, "connection"))
    allowed = tuple(getattr(connector, "secret_names", ()))
    for credential in system.credentials:
        if credential not in allowed:
            known = f"expected one of: {', '.join(allowed)}" if allowed else "it takes none"
            yield Finding(f"unknown credential {credential!r} for kind {system.kind!r} ({known})"
                          + _did_you_mean(credential, allowed), (*path, "credentials", credential))


_MSGSPEC_PATH = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def msgspec_finding(error: msgspec.ValidationError, config_type: Any, path: JsonPath) -> Finding:
    """msgspec's error located under ``path``: ``Expected `int`, got `str` - at `$.port``` → ``(*path, "port")``."""
    message, separator, where = str(error).rpartition(" - at `")
    if not separator:
        message, where = str(error), "$`"
    for match in _MSGSPEC_PATH.finditer(where.rstrip("`").removeprefix("$").partition("[...]")[0]):
        path = (*path, match.group(1) if match.group(1) is not None else int(match.group(2)))
    if found := re.fullmatch(r"Object missing required field `(.+)`", message):
        return Finding(f"missing required field {found.group(1)!r}", path)
    if found := re.fullmatch(r"Object contains unknown field `(.+)`", message):
        return Finding(unknown_field(found.group(1), _field_names(config_type)), (*path, found.group(1)))
    return Finding(message[:1].lower() + message[1:], path)


def _field_names(config_type: Any) -> list[str]:
    if isinstance(config_type, type) and issubclass(config_type, msgspec.Struct):
        return sorted(field.encode_name for field in msgspec.structs.fields(config_type))
    if dataclasses.is_dataclass(config_type):
        return sorted(field.name for field in dataclasses.fields(config_type))
    return []


@dataclasses.dataclass(frozen=True)
class _Known:
    """Names a mapping may refer to besides fields: code maps and units."""

    code_maps: set[str] = dataclasses.field(default_factory=set)
    units: set[str] = dataclasses.field(default_factory=set)


def _units(estate: Estate) -> Iterator[Finding]:
    """Every unit a conversion or a base unit names must be known: built in, or declared under units.units."""
    known = _unit_codes(estate)
    places: list[tuple[str, JsonPath]] = []
    for index, conversion in enumerate(estate.units.conversions):
        places += [(conversion.from_, ("units", "conversions", index, "from")),
                   (conversion.to, ("units", "conversions", index, "to"))]
    for item, spec in estate.units.items.items():
        if spec.base_unit is not None:
            places.append((spec.base_unit, ("units", "items", item, "base_unit")))
        for index, conversion in enumerate(spec.conversions):
            places += [(conversion.from_, ("units", "items", item, "conversions", index, "from")),
                       (conversion.to, ("units", "items", item, "conversions", index, "to"))]
    for unit, path in places:
        if unit not in known:
            yield Finding(f"unknown unit {unit!r}: declare it under units.units" + _did_you_mean(unit, known), path)
    for index, conversion in enumerate(estate.units.conversions):
        try:
            factor = Decimal(str(conversion.factor))
        except InvalidOperation:
            factor = Decimal(0)
        if not factor.is_finite() or factor <= 0:
            yield Finding(f"expected a positive factor, got {show(conversion.factor)}",
                          ("units", "conversions", index, "factor"))


def _unit_codes(estate: Estate) -> set[str]:
    from syncfabric.mapping.units import BUILTIN_UNITS

    return set(BUILTIN_UNITS) | set(estate.units.units)


def _fields(fields: dict[str, Any], record: type, what: str, path: JsonPath,
            names: _Known | None = None) -> Iterator[Finding]:
    """Each mapped name must be a field of the record; a nested mapping needs a nested record; expressions must
    name code maps and functions that exist."""
    from syncfabric.mapping.expressions import is_expression
    from syncfabric.mapping.validation import spec_problems

    names = names or _Known()
    known = {field.encode_name: field.type for field in msgspec.structs.fields(record)}
    for name, source in fields.items():
        here = (*path, name)
        if name not in known:
            yield Finding(f"unknown field {name!r} on {what} (fields: {', '.join(known)})"
                          + _did_you_mean(name, known), here)
        elif isinstance(source, dict) and "each" in source:
            yield from _each(name, source, known[name], what, here, names)
        elif is_expression(source):
            for message, where in spec_problems(source, names.code_maps, set(ENTITIES)):
                yield Finding(message + (_did_you_mean(source["code_map"], names.code_maps)
                                         if where == ("code_map",) else ""), (*here, *where))
        elif isinstance(source, dict) and set(source) != {"const"}:
            nested = _struct_in(known[name])
            if nested is None:
                yield Finding(f"field {name!r} of {what} is not a nested record: map it to a source field name, "
                              f"a dotted path or {{const: VALUE}}", here)
            else:
                target = source.get("convert_to")
                if target is not None and (nested.__name__ != "Quantity" or (
                        target != "base_unit" and target not in names.units)):
                    yield Finding(f"convert_to takes base_unit or a known unit, on a quantity; got {show(target)}",
                                  (*here, "convert_to"))
                rest = {key: value for key, value in source.items() if key != "convert_to"}
                yield from _fields(rest, nested, f"{name!r} ({nested.__name__})", here, names)
        elif not isinstance(source, str | dict):
            yield Finding(f"expected a source field name, {{const: VALUE}} or a nested mapping, got {show(source)}",
                          here)
        elif source == "":
            yield Finding("expected a source field name, got an empty string", here)


def _each(name: str, source: dict[str, Any], hint: Any, what: str, path: JsonPath,
          names: _Known) -> Iterator[Finding]:
    """``lines: {each: ITEMS, fields: {...}}``: a list of nested records, one per element of a source list."""
    item = _list_item(hint)
    line = _struct_in(item) if item is not None else None
    if line is None:
        yield Finding(f"field {name!r} of {what} is not a list of records: each needs one", (*path, "each"))
        return
    for key in source:
        if key not in ("each", "fields"):
            yield Finding(f"unknown key {key!r} (a list is mapped with each: SOURCE_LIST, fields: {{...}})",
                          (*path, key))
    if not isinstance(source["each"], str) or not source["each"]:
        yield Finding("each takes the source field or dotted path of a list", (*path, "each"))
    fields = source.get("fields")
    if not isinstance(fields, dict) or not fields:
        yield Finding("a list mapping needs fields: {...} for each of its elements", path)
        return
    yield from _fields(fields, line, f"{name!r} ({line.__name__})", (*path, "fields"), names)


def _struct_in(hint: Any) -> type | None:
    """The Struct a field holds (``Quantity``, ``Quantity | None``, ``Annotated[Quantity, ...]``), if any."""
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        return hint
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _struct_in(typing.get_args(hint)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if (found := _struct_in(arg)) is not None:
                return found
    return None


def _entity(name: str, path: JsonPath) -> Iterator[Finding]:
    if name not in ENTITIES:
        hint = _did_you_mean(name, ENTITIES)  # the list of entities is long: name it only when no close match
        yield Finding(f"unknown entity {name!r}" + (hint or f" (known: {', '.join(ENTITIES)})"), path)


def _reference(what: str, name: str, existing: Iterable[str], path: JsonPath) -> Iterator[Finding]:
    names = sorted(existing)
    if name not in names:
        yield Finding(f"unknown {what} {name!r} ({what}s: {', '.join(names) or 'none'})"
                      + _did_you_mean(name, names), path)


def _cron(expression: str | None, path: JsonPath) -> Iterator[Finding]:
    if expression is None:
        return
    from croniter import croniter

    try:
        croniter(expression)
    except (ValueError, KeyError, TypeError) as error:
        reason = str(error).removeprefix(f"[{expression}] ")
        yield Finding(f"invalid cron expression {expression!r}: {reason}", path)


def _did_you_mean(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
