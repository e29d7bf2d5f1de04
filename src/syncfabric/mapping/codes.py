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
        self._inverse: dict[str, dict[str, str]] = {}

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

    def ambiguous(self, name: str) -> dict[str, list[str]]:
        """Canonical values that more than one code maps to, with those codes: what keeps the map from being
        inverted (an outbound mapping cannot tell which code to send)."""
        codes: dict[str, list[str]] = {}
        for code, value in self._values.get(name, {}).items():
            codes.setdefault(_text(value), []).append(code)
        return {value: found for value, found in codes.items() if len(found) > 1}

    def code_of(self, name: str, value: Any) -> str:
        """The system code of canonical ``value`` in map ``name`` (the inverse translation), or CodeMapError."""
        inverse = self._inverse.get(name)
        if inverse is None:
            if name not in self._values:
                raise CodeMapError(f"unknown code map {name!r}")
            inverse = self._inverse[name] = {_text(canonical): code for code, canonical in self._values[name].items()}
        text = _text(value)
        if text not in inverse:
            raise CodeMapError(f"no code for canonical value {text!r} in code map {name!r} "
                               f"(version {self.version(name)})")
        return inverse[text]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value).strip()
