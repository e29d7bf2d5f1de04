"""A pre-compiled plan for mappings that only rename columns, the common shape of master-data exports.

When every field of a mapping is a plain source column (``item_id: ITEM_NO``: no dotted path, constant,
expression, nested record or list) and the entity has no quantities, mapping a row is: take each column, strip
text, drop what is empty, and decode the canonical record with ``msgspec.convert`` — which is what
:meth:`FieldMap.map <syncfabric.mapping.FieldMap.map>` does for such a mapping, without its general machinery.
A row the plan cannot decode is handed to ``FieldMap.map``, so that problems are reported exactly as always; a
record it does decode is the one ``FieldMap.map`` would have made (a test compares both on every kind of row).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import msgspec

from syncfabric.mapping import FieldMap
from syncfabric.mapping.xref import XrefClaim
from syncfabric.model import Record

Mapper = Callable[[dict[str, Any]], tuple[Record, list[XrefClaim]]]

_PLANS: weakref.WeakKeyDictionary[FieldMap, Mapper] = weakref.WeakKeyDictionary()


def mapper(field_map: FieldMap) -> Mapper:
    """The fastest way to map rows with ``field_map`` that gives the same results as ``field_map.map``."""
    found = _PLANS.get(field_map)
    if found is None:
        found = _PLANS[field_map] = _rename_plan(field_map) or field_map.map
    return found


def renames_only(field_map: FieldMap) -> bool:
    """Whether ``field_map`` only renames columns: what it makes of a row depends on that row alone (no code map,
    cross-reference, time zone or unit table is consulted)."""
    return _plain_columns(field_map) is not None


def _plain_columns(field_map: FieldMap) -> tuple[tuple[str, str], ...] | None:
    mapping = getattr(field_map, "mapping", None)
    if mapping is None or field_map._quantities or field_map._conversions:
        return None
    columns = tuple(mapping.fields.items())
    if not columns or not all(isinstance(column, str) and "." not in column for _, column in columns):
        return None
    return columns


def _rename_plan(field_map: FieldMap) -> Mapper | None:
    columns = _plain_columns(field_map)
    if columns is None:
        return None
    cls = field_map.entity_cls
    convert = msgspec.convert
    fallback = field_map.map

    def map_row(raw: dict[str, Any]) -> tuple[Record, list[XrefClaim]]:
        get = raw.get
        # Each column's value, text stripped; missing, None and blank text left out.
        data = {target: value for target, column in columns
                if (value := get(column)) is not None and (not isinstance(value, str) or (value := value.strip()))}
        try:
            return convert(data, cls, strict=False), []
        except (msgspec.ValidationError, ValueError, TypeError):
            return fallback(raw)  # reports every problem, with its column

    return map_row
