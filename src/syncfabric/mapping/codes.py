"""Code maps: versioned translations of a system's codes (order status, plant code) to canonical values.

An unmapped code is an error naming the code and the map, never passed through: a new status code in an ERP
must be decided on, not guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncfabric.config.schema import CodeMap


class CodeMapError(ValueError):
    """A code the map does not know, or a map the estate does not have."""


class CodeMaps:
    """The estate's code maps, by name. Codes are compared as text, so ``10`` and ``"10"`` are the same code."""

    def __init__(self, maps: Mapping[str, CodeMap] | None = None) -> None:
        self._maps = dict(maps or {})
        self._values = {name: {str(code): value for code, value in spec.values.items()}
                        for name, spec in self._maps.items()}

    def __contains__(self, name: object) -> bool:
        return name in self._maps

    def names(self) -> list[str]:
        return sorted(self._maps)

    def version(self, name: str) -> int:
        return self._maps[name].version

    def translate(self, name: str, code: Any) -> Any:
        """The canonical value of ``code`` in map ``name``, or CodeMapError naming both."""
        values = self._values.get(name)
        if values is None:
            raise CodeMapError(f"unknown code map {name!r}")
        text = str(code).strip() if not isinstance(code, str) else code
        if text not in values:
            raise CodeMapError(f"unmapped code {text!r} in code map {name!r} (version {self.version(name)})")
        return values[text]
