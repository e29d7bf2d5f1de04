"""Outbound mappings: a canonical record → a target system's own record, with the same spec language as inbound.

An estate mapping with ``direction: outbound`` names, per field of the *target*, a spec whose paths read the
*canonical* record (``item_id``, ``on_hand.value``, ``lines``). Three transforms work the other way round:

    code_map: NAME       canonical value → the system's code, through the inverse of the map (a map where two codes
                         give one value cannot be inverted; ``syncfabric validate`` names the codes)
    xref: {entity: E}    canonical key → the target system's id for it, looked up in the store's cross-reference
    datetime: {...}      a UTC date-time → local time in the zone of ``timezone`` or ``location``, written with
                         ``format`` (ISO 8601 with its offset when no format is given)

A record that cannot be mapped raises :class:`~syncfabric.errors.RecordError` with every problem at its path in the
target record and the canonical field it reads: ``no code for canonical value 'on_hold' in code map 'order-status'
(version 1) @ $.STAT (field status)``. Deletions carry no payload; the target's key fields are mapped from the
canonical key's parts (:meth:`OutboundMap.key_fields`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from collections.abc import Mapping as MappingOf
from typing import Any

from syncfabric.config.schema import CodeMap, Estate, Mapping
from syncfabric.errors import Problem, RecordError
from syncfabric.mapping.codes import CodeMaps
from syncfabric.mapping.expressions import (
    Environment,
    ExpressionError,
    Getter,
    Scope,
    code_maps_used,
    coded,
    present_only,
    zone_of,
)
from syncfabric.mapping.xref import XrefLookup
from syncfabric.model import Record, entity_type


class OutboundMap:
    """One compiled outbound mapping: canonical record of one entity → the target system's record."""

    def __init__(
        self,
        name: str,
        mapping: Mapping,
        *,
        code_maps: MappingOf[str, CodeMap] | None = None,
        time_zones: Callable[[str], str | None] | None = None,
        xref: XrefLookup | None = None,
    ) -> None:
        from syncfabric.mapping.fields import _compile, _nodes, _source_columns

        self.name = name
        self.system = mapping.system
        self.entity_cls: type[Record] = entity_type(mapping.entity)
        codes = CodeMaps(code_maps)
        env = Environment(system=mapping.system, code_maps=codes, time_zones=time_zones, direction="outbound",
                          xref=xref)
        self._nodes = _nodes(_compile(mapping.fields, env, []))
        self._sources = dict(_source_columns(mapping.fields))
        lineage = [f"{name}@{mapping.version}"]
        lineage += [f"{code}@{codes.version(code)}" for code in sorted(code_maps_used(mapping.fields)) if code in codes]
        self.version = "+".join(lineage)

    @classmethod
    def for_estate(cls, estate: Estate, name: str, *, time_zones: Callable[[str], str | None] | None = None,
                   xref: XrefLookup | None = None) -> OutboundMap:
        return cls(name, estate.mappings[name], code_maps=estate.code_maps, time_zones=time_zones, xref=xref)

    def apply(self, payload: dict[str, Any], key: str = "") -> dict[str, Any]:
        """The target's record for canonical ``payload``, or RecordError listing every problem found."""
        from syncfabric.mapping.fields import _build

        failed: dict[str, str] = {}
        data = _build(self._nodes, Scope(payload), failed, "$")
        if failed:
            raise RecordError([Problem(message, self._at(path)) for path, message in failed.items()],
                              system=self.system, key=key)
        return data

    def key_fields(self, key: str) -> dict[str, Any]:
        """The target fields computable from canonical ``key`` alone (its parts as the entity's key fields): what a
        deletion is addressed by. Fields that need more of the record are left out."""
        from syncfabric.mapping.fields import _build

        parts = key.split("|")
        names = self.entity_cls.key_fields
        known = {name: part for name, part in zip(names, parts, strict=False) if part}
        return _build(self._nodes, Scope(known), {}, "$")

    def _at(self, path: str) -> str:
        column = self._sources.get(path)
        return f"{path} (field {column})" if column else path


# --- transforms the other way round ---------------------------------------------------------------------------


def _code_map(inner: Getter, name: str, env: Environment) -> Getter:
    return coded(inner, lambda value: env.code_maps.code_of(name, value))


def _xref(inner: Getter, spec: dict[str, Any], env: Environment) -> Getter:
    entity = str(spec.get("entity", ""))

    def step(value: Any, _scope: Scope) -> Any:
        key = str(value)
        external = env.xref.xref_external(env.system, entity, key) if env.xref is not None else None
        if external is None:
            raise ExpressionError(f"no {env.system} id for canonical {entity} {key!r} in the cross-reference")
        return external

    return present_only(step)(inner)


def _datetime(inner: Getter, spec: dict[str, Any], env: Environment) -> Getter:
    fmt = spec.get("format")
    zone = zone_of(spec, env)

    def step(value: Any, scope: Scope) -> Any:
        if isinstance(value, dt.datetime):
            moment = value
        else:
            try:
                moment = dt.datetime.fromisoformat(str(value))
            except ValueError:
                raise ExpressionError(f"expected an ISO 8601 date-time, got {value!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)  # canonical date-times are UTC
        local = moment.astimezone(zone(scope))
        return local.strftime(fmt) if fmt else local.isoformat()

    return present_only(step)(inner)


TRANSFORMS: dict[str, Callable[[Getter, Any, Environment], Getter]] = {
    "code_map": _code_map, "xref": _xref, "datetime": _datetime,
}
"""The transforms an outbound mapping applies differently; the others (default, split, pad) work alike."""
