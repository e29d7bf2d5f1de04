"""JSON Schemas of the canonical entities, for partners, mapping authors and the console.

A schema describes a record as syncfabric writes it: Decimals as strings (``"12.5"``), timestamps in UTC
(``...Z``), no unknown fields. Decoding is a little more lenient than the schema, on purpose: it also accepts a
JSON number for a Decimal, read exactly from its text. The schema also carries what JSON Schema cannot say:
``x-key`` (the key fields), ``x-domain`` and ``x-references`` (field path -> entity it refers to).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from syncfabric.model import ENTITIES, entity_type
from syncfabric.model.base import DECIMAL_PATTERN

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def entity_schema(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one entity; nested structs (lines, quantities) are in ``$defs``."""
    cls = entity_type(name)
    generated = msgspec.json.schema(cls)
    defs: dict[str, Any] = generated.get("$defs", {})
    root = defs.pop(cls.__name__)
    if _refers_to(defs, f"#/$defs/{cls.__name__}"):
        defs[cls.__name__] = dict(root)  # a recursive structure still finds its definition
    root.pop("title", None)
    root.pop("description", None)
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": name,
        "description": _docstring(cls),
        "x-key": list(cls.key_fields),
        "x-domain": cls.domain,
        "x-references": dict(cls.references),
        **root,
    }
    if defs:
        for definition in defs.values():
            if "description" in definition:
                definition["description"] = inspect.cleandoc(definition["description"])
        schema["$defs"] = defs
    _pin_decimals(schema)
    return schema


def write_schemas(folder: Path) -> list[Path]:
    """Write ``<entity>.schema.json`` for every entity into ``folder`` (created if missing); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ENTITIES:
        path = folder / f"{name}.schema.json"
        path.write_text(json.dumps(entity_schema(name), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


class EntityRow(NamedTuple):
    """One line of the entity table: what ``syncfabric model`` lists."""

    entity: str
    domain: str
    key_fields: tuple[str, ...]
    field_count: int
    summary: str


def describe() -> list[EntityRow]:
    """A row per entity, in registry (dependency) order."""
    return [
        EntityRow(
            entity=name,
            domain=cls.domain,
            key_fields=cls.key_fields,
            field_count=len(msgspec.structs.fields(cls)),
            summary=_docstring(cls).split("\n", 1)[0],
        )
        for name, cls in ENTITIES.items()
    ]


def _docstring(cls: type) -> str:
    return inspect.cleandoc(cls.__doc__ or "")


def _pin_decimals(node: Any) -> None:
    """Give every Decimal without a pattern the finite-decimal one: NaN and Infinity are not valid values."""
    if isinstance(node, dict):
        if node.get("format") == "decimal" and "pattern" not in node:
            node["pattern"] = DECIMAL_PATTERN
        for value in node.values():
            _pin_decimals(value)
    elif isinstance(node, list):
        for value in node:
            _pin_decimals(value)


def _refers_to(node: Any, ref: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == ref or any(_refers_to(value, ref) for value in node.values())
    if isinstance(node, list):
        return any(_refers_to(value, ref) for value in node)
    return False
