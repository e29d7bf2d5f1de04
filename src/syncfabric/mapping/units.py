"""Units of measure: the built-in unit table, the estate's conversions (global and per item) and rounding.

An unknown unit or a missing conversion is an error, never a silent 1:1. Conversions are looked up item first
(an item's box of 12 wins over any global BOX), then globally; each is usable in both directions and chains of
them are followed (PAL → BOX → EA). A converted quantity is rounded to its unit's decimals with its rounding mode.
"""

from __future__ import annotations

import decimal
import hashlib
from collections import deque
from decimal import Decimal

import msgspec

from syncfabric.config.schema import Conversion, Units

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

_ROUNDING = {
    "half_up": decimal.ROUND_HALF_UP, "half_even": decimal.ROUND_HALF_EVEN, "up": decimal.ROUND_UP,
    "down": decimal.ROUND_DOWN, "ceiling": decimal.ROUND_CEILING, "floor": decimal.ROUND_FLOOR,
}
_DEFAULT_DECIMALS = 6


def is_known_unit(unit: str, extra: frozenset[str] | set[str] = frozenset()) -> bool:
    return unit in BUILTIN_UNITS or unit in extra


class UnitError(ValueError):
    """An unknown unit, or no conversion between two units."""


Edges = dict[str, dict[str, Decimal]]


class UnitTable:
    """The estate's ``units:`` section, compiled for conversion."""

    def __init__(self, units: Units | None = None) -> None:
        self.spec = units or Units()
        self.known = frozenset(BUILTIN_UNITS | set(self.spec.units))
        self._global = _edges(self.spec.conversions)
        self._items = {item: _edges(spec.conversions) for item, spec in self.spec.items.items()}
        self.item_specific = set(self.spec.items)
        """Items whose quantities convert by rules of their own (their conversions or base unit)."""
        self._factors: dict[tuple[str, str, str], Decimal | None] = {}
        """Factors found (None: no conversion) by (from, to, the item when it has conversions of its own): the table
        is fixed once compiled, and a page converts the same few pairs over and over."""

    @property
    def version(self) -> str:
        """A short digest of the table: it changes whenever a conversion or a rounding rule does."""
        return hashlib.blake2b(msgspec.json.encode(self.spec), digest_size=4).hexdigest()

    def base_unit(self, item: str) -> str:
        spec = self.spec.items.get(item)
        if spec is None or spec.base_unit is None:
            raise UnitError(f"no base unit for item {item!r} (units.items.{item}.base_unit)")
        return spec.base_unit

    def factor(self, from_unit: str, to_unit: str, item: str = "") -> Decimal:
        """How many ``to_unit`` make one ``from_unit`` for ``item``, or UnitError naming item and units."""
        at = (from_unit, to_unit, item if item in self._items else "")
        found = self._factors.get(at)
        if found is not None:
            return found
        if at in self._factors:
            return self._factor(from_unit, to_unit, item)  # raises, naming this item
        try:
            found = self._factors[at] = self._factor(from_unit, to_unit, item)
        except UnitError:
            self._factors[at] = None
            raise
        return found

    def _factor(self, from_unit: str, to_unit: str, item: str) -> Decimal:
        for unit in (from_unit, to_unit):
            if unit not in self.known:
                raise UnitError(f"unknown unit {unit!r}")
        if from_unit == to_unit:
            return Decimal(1)
        found = _search(from_unit, to_unit, self._items.get(item, {}), self._global)
        if found is None:
            of = f" for item {item!r}" if item else ""
            raise UnitError(f"no conversion from {from_unit!r} to {to_unit!r}{of}")
        return found

    def convert(self, value: Decimal, from_unit: str, to_unit: str, item: str = "") -> Decimal:
        """``value`` in ``to_unit``, rounded by the rules of ``to_unit``."""
        converted = value * self.factor(from_unit, to_unit, item)
        return self.round(converted, to_unit) if from_unit != to_unit else value

    def round(self, value: Decimal, unit: str) -> Decimal:
        spec = self.spec.units.get(unit)
        decimals = spec.decimals if spec is not None else _DEFAULT_DECIMALS
        mode = _ROUNDING[spec.rounding] if spec is not None else decimal.ROUND_HALF_UP
        rounded = value.quantize(Decimal(1).scaleb(-decimals), rounding=mode)
        if rounded == rounded.to_integral_value():
            return rounded.to_integral_value()  # 240, never 240.000 or 2.4E+2
        return rounded.normalize()


def _edges(conversions: list[Conversion]) -> Edges:
    edges: Edges = {}
    for conversion in conversions:
        factor = Decimal(str(conversion.factor))
        edges.setdefault(conversion.from_, {})[conversion.to] = factor
        edges.setdefault(conversion.to, {}).setdefault(conversion.from_, 1 / factor)
    return edges


def _search(start: str, goal: str, item: Edges, global_: Edges) -> Decimal | None:
    """Breadth-first over item edges then global ones: the shortest chain of conversions, item edges preferred."""
    queue: deque[tuple[str, Decimal]] = deque([(start, Decimal(1))])
    seen = {start}
    with decimal.localcontext() as context:
        context.prec = 34
        while queue:
            unit, factor = queue.popleft()
            for table in (item, global_):
                for next_unit, step in table.get(unit, {}).items():
                    if next_unit in seen:
                        continue
                    if next_unit == goal:
                        return factor * step
                    seen.add(next_unit)
                    queue.append((next_unit, factor * step))
    return None
