"""Reading the estate file: YAML with every value's position kept, and the traps PyYAML lets through refused.

PyYAML silently keeps the last of two equal keys and reads ``on:`` or ``1000:`` as a boolean or a number; in an
estate file both are almost always mistakes, so they are reported. Dates stay text: the estate has no date fields,
and values such as ``{const: 2024-01-01}`` are converted later, by the canonical model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from syncfabric.config._findings import Finding, JsonPath, Position

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_KEY_KINDS = {"tag:yaml.org,2002:bool": "a boolean", "tag:yaml.org,2002:int": "a number",
              "tag:yaml.org,2002:float": "a number", "tag:yaml.org,2002:null": "null"}


class _Loader(yaml.SafeLoader):
    """Safe loading, without the implicit timestamp type."""

    yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag != _TIMESTAMP]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


@dataclass
class Document:
    """The parsed estate: plain data, and where each path starts in the file (a key, or a list item)."""

    data: Any
    positions: dict[JsonPath, Position] = field(default_factory=dict)


def _position(mark: Any) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def parse(text: str) -> tuple[Document | None, list[Finding]]:
    """The document and the problems found reading it; no document when the YAML itself is broken."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(None, {(): Position(1, 1)}), []
        builder = _Builder(loader)
        builder.positions[()] = _position(node.start_mark)
        data = builder.build(node, ())
        return Document(data, builder.positions), builder.findings
    except yaml.MarkedYAMLError as error:
        return None, [_syntax_finding(error)]
    except yaml.YAMLError as error:
        return None, [Finding(f"invalid YAML: {error}", path=None, position=Position(1, 1))]
    finally:
        loader.dispose()


def _syntax_finding(error: yaml.MarkedYAMLError) -> Finding:
    mark = error.problem_mark or error.context_mark
    message = f"invalid YAML: {error.problem or error.context}"
    if error.context and error.problem and error.context_mark is not None:
        message += f" ({error.context} at line {error.context_mark.line + 1})"
    return Finding(message, path=None, position=_position(mark) if mark else Position(1, 1))


class _Builder:
    """Builds plain data from the node tree, recording positions and key problems on the way."""

    def __init__(self, loader: _Loader) -> None:
        self.loader = loader
        self.positions: dict[JsonPath, Position] = {}
        self.findings: list[Finding] = []
        self._open: set[int] = set()

    def build(self, node: Node, path: JsonPath) -> Any:
        if isinstance(node, ScalarNode):
            return self.loader.construct_object(node)
        if id(node) in self._open:
            self.findings.append(Finding("an alias refers to itself", path))
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                items = []
                for index, child in enumerate(node.value):
                    self.positions[(*path, index)] = _position(child.start_mark)
                    items.append(self.build(child, (*path, index)))
                return items
            assert isinstance(node, MappingNode)
            return self._mapping(node, path)
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: MappingNode, path: JsonPath) -> dict[str, Any]:
        first_seen: dict[str, Position] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE or not isinstance(key_node, ScalarNode):
                continue
            here = _position(key_node.start_mark)
            first = first_seen.setdefault(key_node.value, here)
            if first != here:
                self.findings.append(Finding(
                    f"duplicate key {key_node.value!r} (first at line {first.line}, column {first.column})",
                    position=here, path=(*path, key_node.value)))
        self.loader.flatten_mapping(node)  # merge keys (<<: *defaults); explicit keys win over merged ones
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            if key is None:
                continue
            self.positions[(*path, key)] = _position(key_node.start_mark)
            result[key] = self.build(value_node, (*path, key))
        return result

    def _key(self, node: Node, path: JsonPath) -> str | None:
        if not isinstance(node, ScalarNode):
            self.findings.append(Finding("a key must be plain text, not a list or mapping",
                                         position=_position(node.start_mark), path=path))
            return None
        if node.tag != _STR:
            kind = _KEY_KINDS.get(node.tag, f"the type {node.tag}")
            self.findings.append(Finding(
                f"key {node.value!r} is read as {kind}, not as text; write it in quotes: '{node.value}'",
                position=_position(node.start_mark), path=(*path, node.value)))
        return str(node.value)
