"""The estate's JSON Schema, generated from the Structs in :mod:`syncfabric.config.schema`.

Editors use it (``schemas/estate.schema.json``, kept equal to this by a test) and the loader validates every estate
file against it, so that a structural mistake reads the same in the editor and on the command line.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import msgspec

from syncfabric.config.schema import Estate

DIALECT = "https://json-schema.org/draft/2020-12/schema"


@functools.cache
def _generated() -> dict[str, Any]:
    generated = msgspec.json.schema(Estate)
    definitions: dict[str, Any] = generated["$defs"]
    root = definitions.pop("Estate")
    for definition in definitions.values():
        _lift_descriptions(definition)
    _lift_descriptions(root)
    root.pop("title", None)
    return {
        "$schema": DIALECT,
        "title": "syncfabric estate",
        "description": (root.pop("description", "") + " Systems, their connections and credentials (by "
                        "environment-variable reference), sync domains, mappings to the canonical model, and flows."),
        **root,
        "$defs": definitions,
    }


def _lift_descriptions(definition: dict[str, Any]) -> None:
    """Move help from inside ``anyOf`` (an optional field) up to the property, where editors show it."""
    for prop in definition.get("properties", {}).values():
        for branch in prop.get("anyOf", ()):
            for key in ("description", "examples"):
                if key in branch and key not in prop:
                    prop[key] = branch.pop(key)


def estate_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an estate file; a fresh copy the caller may change."""
    return copy.deepcopy(_generated())


@functools.cache
def validator() -> Any:
    """A Draft 2020-12 validator for estate documents (jsonschema is imported only when validating).

    An integer is an ``int`` here, not also ``5.0`` as JSON Schema allows: the Structs decode strictly, and the
    mistake is better reported at its field than by the decoder."""
    from jsonschema import Draft202012Validator, validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    strict = validators.extend(Draft202012Validator, type_checker=checker)
    return strict(_generated())
