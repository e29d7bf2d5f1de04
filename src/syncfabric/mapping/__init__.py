"""Mapping between systems' records and the canonical model: field maps, units, codes, cross-reference."""

from syncfabric.mapping.fields import FieldMap

__all__ = ["FieldMap"]
