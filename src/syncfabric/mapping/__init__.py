"""Mapping between systems' records and the canonical model: field maps, units, codes, cross-reference."""

from syncfabric.mapping import functions
from syncfabric.mapping.codes import CodeMapError, CodeMaps
from syncfabric.mapping.fields import FieldMap
from syncfabric.mapping.units import UnitError, UnitTable
from syncfabric.mapping.xref import XrefClaim, derive_key

__all__ = ["CodeMapError", "CodeMaps", "FieldMap", "UnitError", "UnitTable", "XrefClaim", "derive_key", "functions"]
