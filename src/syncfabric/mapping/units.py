"""Units of measure known to the canonical model.

An unknown unit is an error, never a silent 1:1. This is the built-in global table; estates extend it.
"""

from __future__ import annotations

BUILTIN_UNITS: frozenset[str] = frozenset({
    # count
    "EA", "PC", "PR", "DZ", "BOX", "CS", "PAL", "SET", "ROL",
    # mass
    "KG", "G", "MG", "T", "LB", "OZ",
    # length, area, volume
    "M", "CM", "MM", "KM", "IN", "FT", "M2", "M3", "L", "ML", "GAL",
    # time
    "H", "MIN", "S", "DAY",
})


def is_known_unit(unit: str, extra: frozenset[str] = frozenset()) -> bool:
    return unit in BUILTIN_UNITS or unit in extra
