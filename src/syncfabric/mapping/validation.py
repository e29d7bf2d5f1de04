"""Estate validation of field specs: unknown keys, options, code maps, functions, derive rules and time zones.

Each problem comes with its path below the spec, so that the estate validator can point at its line.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syncfabric.mapping import functions
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
