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
from typing import Any

import msgspec

from syncfabric.config._findings import Finding, JsonPath, show
from syncfabric.config._secrets import without_inline_secrets
from syncfabric.config._structure import unknown_field
from syncfabric.config.schema import Estate, Flow, System
from syncfabric.connectors import registry
from syncfabric.model import ENTITIES

_STORE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def semantic_findings(estate: Estate) -> list[Finding]:
    findings: list[Finding] = []
    if not _STORE_URL.match(estate.store):
        findings.append(Finding("expected a store URL such as sqlite:///path/to.db or postgresql://host/db",
                                ("store",)))
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
        else:
            findings.extend(_fields(mapping.fields, entity, f"entity {mapping.entity!r}", (*path, "fields")))
    for name, flow in estate.flows.items():
        findings.extend(_flow(estate, flow, ("flows", name)))
    return findings


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


def _fields(fields: dict[str, Any], record: type, what: str, path: JsonPath) -> Iterator[Finding]:
    """Each mapped name must be a field of the record; a nested mapping needs a nested record."""
    known = {field.encode_name: field.type for field in msgspec.structs.fields(record)}
    for name, source in fields.items():
        here = (*path, name)
        if name not in known:
            yield Finding(f"unknown field {name!r} on {what} (fields: {', '.join(known)})"
                          + _did_you_mean(name, known), here)
        elif isinstance(source, dict) and set(source) != {"const"}:
            nested = _struct_in(known[name])
            if nested is None:
                yield Finding(f"field {name!r} of {what} is not a nested record: map it to a source field name, "
                              f"a dotted path or {{const: VALUE}}", here)
            else:
                yield from _fields(source, nested, f"{name!r} ({nested.__name__})", here)
        elif not isinstance(source, str | dict):
            yield Finding(f"expected a source field name, {{const: VALUE}} or a nested mapping, got {show(source)}",
                          here)
        elif source == "":
            yield Finding("expected a source field name, got an empty string", here)


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
