"""Problems found in an estate, located by JSON path, and how they are printed.

Every check produces :class:`Finding` values keyed by a path into the document (``("flows", "items-in",
"batch_size")``); only at the end are they turned into ``estate.yaml:14:5: message @ $.flows.items-in.batch_size``.
A path is located by the YAML position of its longest known prefix, or by the environment variable that set it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

JsonPath = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class Position:
    """A 1-based line and column in the estate file."""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem. A ``position`` (a YAML syntax error) or ``where`` (an environment variable) overrides the
    location found from ``path``; ``path`` is None when no place in the document can be named."""

    message: str
    path: JsonPath | None = ()
    where: str | None = None
    position: Position | None = None


def format_path(path: JsonPath) -> str:
    """``("flows", "items-in", "entities", 0)`` → ``$.flows.items-in.entities[0]``."""
    parts = ["$"]
    for segment in path:
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        elif _PLAIN_KEY.match(segment):
            parts.append(f".{segment}")
        else:
            parts.append(f"[{segment!r}]")
    return "".join(parts)


def is_sensitive(path: JsonPath) -> bool:
    """Values here may hold secrets (connection settings, credentials, a store URL): never echo them."""
    return (path[:1] == ("systems",) and len(path) >= 2) or path[:1] == ("store",)


def show(value: Any, *, redact: bool = False) -> str:
    """A value as a message quotes it: short, and only its kind when it may be secret."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if redact:
        return {str: "a string", int: "an integer", float: "a number"}.get(type(value), f"a {type(value).__name__}")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return f"a {type(value).__name__}"


class Locator:
    """Turns findings into sorted, printable problems: file positions first, in file order, then variables."""

    def __init__(self, file: str, positions: Mapping[JsonPath, Position],
                 overrides: Mapping[JsonPath, str] | None = None) -> None:
        self.file = file
        self.positions = positions
        self.overrides = overrides or {}

    def locate(self, path: JsonPath) -> tuple[str, tuple[int, int, int]]:
        """The location text of a path and a key to sort by."""
        for length in range(len(path), -1, -1):
            prefix = path[:length]
            if prefix in self.overrides:
                return self.overrides[prefix], (1, 0, 0)
            position = self.positions.get(prefix)
            if position is not None:
                return f"{self.file}:{position.line}:{position.column}", (0, position.line, position.column)
        return f"{self.file}:1:1", (0, 1, 1)

    def format_all(self, findings: Iterable[Finding]) -> list[str]:
        ranked: dict[str, tuple[tuple[int, int, int], int]] = {}
        for index, finding in enumerate(findings):
            text, rank = self._format(finding)
            ranked.setdefault(text, (rank, index))
        return sorted(ranked, key=lambda text: ranked[text])

    def _format(self, finding: Finding) -> tuple[str, tuple[int, int, int]]:
        if finding.position is not None:
            where = f"{self.file}:{finding.position.line}:{finding.position.column}"
            rank = (0, finding.position.line, finding.position.column)
        elif finding.where is not None:
            where, rank = finding.where, (1, 0, 0)
        elif finding.path is not None:
            where, rank = self.locate(finding.path)
        else:
            where, rank = self.file, (0, 0, 0)
        suffix = f" @ {format_path(finding.path)}" if finding.path is not None else ""
        return f"{where}: {finding.message}{suffix}", rank
