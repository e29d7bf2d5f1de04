"""Structural validation: the whole document against the estate's JSON Schema, every error in words.

jsonschema reports every error at once (``iter_errors``); each is turned into a message a person acts on —
``unknown field 'shedule' (expected one of: ...)``, ``expected integer >= 1, got 0`` — at the path it concerns.
Values under ``systems`` and ``store`` are never quoted back: they may be secrets written in the wrong place.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from syncfabric.config._findings import Finding, JsonPath, is_sensitive, show
from syncfabric.config._json_schema import validator
from syncfabric.config.schema import ENV_VARIABLE_PATTERN, NAME_PATTERN

_TYPE_WORDS = {"object": "mapping", "array": "list", "string": "string", "integer": "integer",
               "number": "number", "boolean": "boolean", "null": "null"}
_COMPARISONS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
_PATTERN_WORDS = {
    NAME_PATTERN: "a lower-case name: letters, digits, '-', '_', '.'",
    ENV_VARIABLE_PATTERN: "an environment variable name: letters, digits and '_'",
}


def structure_findings(data: Any) -> list[Finding]:
    """Every structural problem of the document; empty when it has the estate's shape."""
    findings: list[Finding] = []
    for error in validator().iter_errors(data):
        findings.extend(_explain(error))
    return findings


def _explain(error: Any) -> Iterator[Finding]:
    path: JsonPath = tuple(error.absolute_path)
    keyword, schema, instance, expected = error.validator, error.schema, error.instance, error.validator_value
    got = show(instance, redact=is_sensitive(path))
    if len(error.schema_path) >= 2 and error.schema_path[-2] == "propertyNames":
        wanted = _pattern_words(schema) if keyword == "pattern" else f"at most {expected} characters"
        yield Finding(f"invalid name {instance!r}: expected {wanted}", (*path, instance))
    elif keyword == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        for key in instance:
            if key not in allowed:
                yield Finding(unknown_field(key, allowed), (*path, key))
    elif keyword == "required":
        for name in expected:
            if name not in instance:
                yield Finding(f"missing required field {name!r}", path)
    elif keyword == "type":
        yield Finding(f"expected {_type_words(expected)}, got {got}", path)
    elif keyword == "enum":
        options = ", ".join(show(option) for option in expected)
        wanted = options if len(expected) == 1 else f"one of {options}"
        yield Finding(f"expected {wanted}, got {got}", path)
    elif keyword in _COMPARISONS:
        kind = _type_words(schema.get("type", "number"))
        yield Finding(f"expected {kind} {_COMPARISONS[keyword]} {expected}, got {got}", path)
    elif keyword == "pattern":
        yield Finding(f"expected {_pattern_words(schema)}, got {got}", path)
    elif keyword in ("minLength", "maxLength"):
        bound = "at least" if keyword == "minLength" else "at most"
        yield Finding(f"expected {bound} {expected} characters, got {len(instance)}", path)
    elif keyword in ("minItems", "maxItems"):
        bound = "at least" if keyword == "minItems" else "at most"
        yield Finding(f"expected {bound} {expected} item(s), got {len(instance)}", path)
    elif keyword in ("anyOf", "oneOf"):
        yield from _explain_alternatives(error, path, got)
    else:
        yield Finding(f"does not satisfy {keyword!r}", path)


def _explain_alternatives(error: Any, path: JsonPath, got: str) -> Iterator[Finding]:
    """``T | None``: when the value has the type of one branch, that branch's errors say what is wrong."""
    branches: list[dict[str, Any]] = error.validator_value
    type_checker = validator().TYPE_CHECKER
    for index, branch in enumerate(branches):
        if "type" in branch and type_checker.is_type(error.instance, branch["type"]):
            for sub in error.context:
                if sub.relative_schema_path[0] == index:
                    yield from _explain(sub)
            return
    described = " or ".join(_describe(branch) for branch in branches)
    yield Finding(f"expected {described}, got {got}", path)


def _describe(schema: dict[str, Any]) -> str:
    if "type" in schema:
        return _type_words(schema["type"])
    if "enum" in schema:
        return "one of " + ", ".join(show(option) for option in schema["enum"])
    return "mapping" if "$ref" in schema else "something else"


def _type_words(expected: str | list[str]) -> str:
    names = [expected] if isinstance(expected, str) else expected
    return " or ".join(_TYPE_WORDS.get(name, name) for name in names)


def _pattern_words(schema: dict[str, Any]) -> str:
    pattern = schema.get("pattern", "")
    return _PATTERN_WORDS.get(pattern, f"text matching {pattern}")


def unknown_field(key: str, allowed: list[str]) -> str:
    """``unknown field 'shedule' (expected one of: ...); did you mean 'schedule'?``"""
    message = f"unknown field {key!r} (expected one of: {', '.join(allowed)})"
    close = difflib.get_close_matches(key, allowed, n=1)
    return message + (f"; did you mean {close[0]!r}?" if close else "")
