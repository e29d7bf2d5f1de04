"""The building blocks every canonical record shares: a frozen msgspec Struct with a declared key.

Records are decoded and validated on the hot path of every flow, so they are msgspec Structs: typed, frozen,
fast to decode from JSON and to encode for hashing. Each entity declares

- ``entity``: its canonical name (``item``, ``inventory_balance``...), used in the store and the estate file;
- ``key_fields``: the fields whose values, joined by ``|``, make its canonical key;
- ``domain``: master, transactions, planning or events.

Quantities are :class:`Quantity` (a Decimal with its unit); timestamps must be timezone-aware and in UTC.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, ClassVar

import msgspec

KEY_SEPARATOR = "|"

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
"""An identifier or code: non-empty, bounded."""

UtcDateTime = Annotated[dt.datetime, msgspec.Meta(tz=True)]
"""A timezone-aware timestamp; records check that its offset is zero (UTC)."""

NonNegative = Annotated[Decimal, msgspec.Meta(ge=0)]


class Quantity(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An amount in a unit of measure. ``value`` is a Decimal, never a float, so sums stay exact."""

    value: Decimal
    unit: Code

    def __str__(self) -> str:
        return f"{self.value} {self.unit}"


class Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every canonical entity."""

    entity: ClassVar[str] = ""
    key_fields: ClassVar[tuple[str, ...]] = ()
    domain: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for name in _utc_fields(type(self)):
            value = getattr(self, name)
            if value is not None and value.utcoffset() != dt.timedelta(0):
                raise ValueError(f"{name} must be in UTC, got offset {value.utcoffset()}")

    @property
    def key(self) -> str:
        """The canonical key: the key fields' values joined by ``|``."""
        return KEY_SEPARATOR.join(_key_part(getattr(self, name)) for name in self.key_fields)


def _key_part(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


_UTC_FIELDS: dict[type, tuple[str, ...]] = {}


def _utc_fields(cls: type[Record]) -> tuple[str, ...]:
    """Names of the datetime fields of ``cls`` (top level), computed once per class."""
    found = _UTC_FIELDS.get(cls)
    if found is None:
        found = tuple(
            field.name for field in msgspec.structs.fields(cls) if _mentions_datetime(field.type)
        )
        _UTC_FIELDS[cls] = found
    return found


def _mentions_datetime(hint: Any) -> bool:
    import typing

    if hint is dt.datetime:
        return True
    return any(_mentions_datetime(arg) for arg in typing.get_args(hint))


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
