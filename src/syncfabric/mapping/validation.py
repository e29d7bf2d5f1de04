"""Estate validation of field specs: unknown keys, options, code maps, functions, derive rules and time zones.

Each problem comes with its path below the spec, so that the estate validator can point at its line.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from syncfabric.mapping import functions
from syncfabric.mapping.codes import CodeMaps
from syncfabric.mapping.expressions import OPTIONS, SOURCES, TRANSFORMS, is_expression
from syncfabric.mapping.xref import rule_problems

_TRANSFORM_OPTIONS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "split": {"sep": str, "index": int},
    "pad": {"width": int, "fill": str, "side": str},
    "datetime": {"format": str, "timezone": str, "location": (str, dict)},
}


def _option_problems(key: str, options: Any, allowed: dict[str, type | tuple[type, ...]]
                     ) -> list[tuple[str, tuple[Any, ...]]]:
    if not isinstance(options, dict):
        return [(f"{key} takes a mapping of options ({', '.join(allowed)})", (key,))]
    problems: list[tuple[str, tuple[Any, ...]]] = []
    for name, value in options.items():
        if name not in allowed:
            problems.append((f"unknown option {name!r} of {key} (options: {', '.join(allowed)})", (key, name)))
        elif not isinstance(value, allowed[name]) or isinstance(value, bool):
            problems.append((f"unexpected value {value!r} for {key}.{name}", (key, name)))
    if key == "pad" and options.get("side", "left") not in ("left", "right"):
        problems.append(("side must be left or right", (key, "side")))
    return problems



def spec_problems(spec: dict[str, Any], code_maps: set[str], entities: set[str]) -> list[tuple[str, tuple[Any, ...]]]:
    """What is wrong with an expression spec, each with the path below the spec, for estate validation."""
    problems: list[tuple[str, tuple[Any, ...]]] = []
    sources = [key for key in SOURCES if key in spec]
    if len(sources) > 1:
        problems.append((f"a field spec takes one source, got {', '.join(sources)}", ()))
    allowed = {*SOURCES, *TRANSFORMS, *(option for key in sources for option in OPTIONS.get(key, ()))}
    for key in spec:
        if key not in allowed:
            problems.append((f"unknown key {key!r} in field spec (keys: {', '.join(sorted(allowed))})", (key,)))
    if "from" in spec and not isinstance(spec["from"], str):
        problems.append(("from takes a source field name or dotted path", ("from",)))
    if "concat" in spec and not isinstance(spec["concat"], list):
        problems.append(("concat takes a list of field specs", ("concat",)))
    if "function" in spec:
        try:
            functions.get(str(spec["function"]))
        except LookupError as exc:
            problems.append((str(exc.args[0]), ("function",)))
    if "code_map" in spec and spec["code_map"] not in code_maps:
        problems.append((f"unknown code map {spec['code_map']!r} (code maps: {', '.join(sorted(code_maps)) or 'none'})",
                         ("code_map",)))
    if "xref" in spec:
        xref = spec["xref"]
        if not isinstance(xref, dict) or xref.get("entity") not in entities:
            problems.append(("xref needs the canonical entity: xref: {entity: item, derive: {...}}", ("xref",)))
        else:
            problems.extend((problem, ("xref", "derive")) for problem in rule_problems(xref.get("derive") or {}))
    for key, options in _TRANSFORM_OPTIONS.items():
        if key in spec:
            problems.extend(_option_problems(key, spec[key], options))
    zone = spec.get("datetime", {}).get("timezone") if isinstance(spec.get("datetime"), dict) else None
    if zone is not None:
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError):
            problems.append((f"unknown time zone {zone!r}", ("datetime", "timezone")))
    for key, items in (("concat", spec.get("concat")), ("args", spec.get("args"))):
        for index, item in enumerate(items if isinstance(items, list) else []):
            if is_expression(item):
                problems.extend((message, (key, index, *where))
                                for message, where in spec_problems(item, code_maps, entities))
    return problems


def outbound_problems(fields: dict[str, Any], record: Any, code_maps: CodeMaps,
                      entities: set[str]) -> list[tuple[str, tuple[Any, ...]]]:
    """What is wrong with an outbound mapping's fields (target field → spec reading the canonical ``record``): specs
    as inbound, every path a field of the canonical record, every code map used invertible. Paths are below
    ``fields``."""
    problems: list[tuple[str, tuple[Any, ...]]] = []
    for target, spec in fields.items():
        problems.extend((message, (target, *where)) for message, where in _outbound_spec(spec, record, code_maps,
                                                                                         entities))
    return problems


def _outbound_spec(spec: Any, record: Any, code_maps: CodeMaps,
                   entities: set[str]) -> list[tuple[str, tuple[Any, ...]]]:
    from syncfabric.config._semantic import _list_item, _struct_in

    if isinstance(spec, str):
        return [(message, ()) for message in canonical_path_problems(spec, record)]
    if not isinstance(spec, dict):
        return [(f"expected a canonical field path, {{const: VALUE}}, an expression or a nested mapping, got "
                 f"{spec!r}", ())]
    if "each" in spec:
        problems = [(message, ("each",)) for message in canonical_path_problems(str(spec["each"]), record)]
        own = record.line if isinstance(record, _Either) else record
        line = _struct_in(_list_item(_hint(own, str(spec["each"]))) or type(None))
        fields = spec.get("fields")
        if not isinstance(fields, dict) or not fields:
            return [*problems, ("a list mapping needs fields: {...} for each of its elements", ())]
        if line is not None:  # a line's specs read the line's fields (and the record's around it)
            problems += [(message, ("fields", *where))
                         for message, where in outbound_problems(fields, _Either(line, record), code_maps, entities)]
        return problems
    if not is_expression(spec):
        if "convert_to" in spec:
            return [("convert_to applies to inbound mappings; an outbound mapping sends the canonical quantity",
                     ("convert_to",))]
        return outbound_problems(spec, record, code_maps, entities)
    problems = list(spec_problems(spec, set(code_maps.names()), entities))
    for key, at in _paths_of(spec):
        problems.extend((message, at) for message in canonical_path_problems(key, record))
    name = spec.get("code_map")
    if isinstance(name, str) and name in code_maps:
        for value, codes in code_maps.ambiguous(name).items():
            problems.append((f"code map {name!r} cannot be inverted: canonical value {value!r} comes from codes "
                             f"{', '.join(map(repr, codes))}; an outbound mapping needs one code per value",
                             ("code_map",)))
    if isinstance(spec.get("xref"), dict) and "derive" in spec["xref"]:
        problems.append(("an outbound xref looks the target's id up; derive rules apply to inbound mappings",
                         ("xref", "derive")))
    return problems


def _paths_of(spec: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    """The canonical paths an expression reads, each with where it is in the spec."""
    found: list[tuple[str, tuple[Any, ...]]] = []
    if isinstance(spec.get("from"), str):
        found.append((spec["from"], ("from",)))
    for key in ("concat", "args"):
        for index, item in enumerate(spec.get(key) or [] if isinstance(spec.get(key), list) else []):
            if isinstance(item, str):
                found.append((item, (key, index)))
            elif is_expression(item):
                found.extend((path, (key, index, *at)) for path, at in _paths_of(item))
    location = spec.get("datetime", {}).get("location") if isinstance(spec.get("datetime"), dict) else None
    if isinstance(location, str):
        found.append((location, ("datetime", "location")))
    elif is_expression(location):
        found.extend((path, ("datetime", "location", *at)) for path, at in _paths_of(location))
    return found


class _Either:
    """The fields a line's spec may read: the line's own, then the record's around it."""

    def __init__(self, line: type, record: type | _Either) -> None:
        self.line, self.record = line, record


def canonical_path_problems(path: str, record: type | _Either) -> list[str]:
    """Why ``path`` (``on_hand.value``) is not a field of the canonical record, if it is not."""
    if isinstance(record, _Either):
        own = canonical_path_problems(path, record.line)
        return own if own and canonical_path_problems(path, record.record) else []
    from syncfabric.config._semantic import _struct_in

    current: type | None = record
    for part in path.split("."):
        if current is None:
            return []  # below a free-form field (a dict): nothing to check
        names = {field.encode_name: field.type for field in msgspec.structs.fields(current)}
        if part not in names:
            return [f"unknown field {part!r} of canonical {getattr(current, 'entity', None) or current.__name__} "
                    f"(fields: {', '.join(names)})"]
        current = _struct_in(names[part])
    return []


def _hint(record: type, path: str) -> Any:
    from syncfabric.config._semantic import _struct_in

    current: Any = record
    hint: Any = None
    for part in path.split("."):
        if current is None:
            return None
        hint = next((field.type for field in msgspec.structs.fields(current) if field.encode_name == part), None)
        current = _struct_in(hint) if hint is not None else None
    return hint
