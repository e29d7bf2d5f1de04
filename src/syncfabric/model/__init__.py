"""The canonical manufacturing model: every record syncfabric moves is one of these entities."""

from __future__ import annotations

from syncfabric.model import events, execution, master, planning, structures, transactions
from syncfabric.model.base import KEY_SEPARATOR, Quantity, Record

ENTITIES: dict[str, type[Record]] = {
    cls.entity: cls
    for module in (master, structures, transactions, execution, planning, events)
    for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, Record) and cls.entity and cls.__module__ == module.__name__
}
"""Every canonical entity by its name, in dependency order: an entity comes after those it refers to."""


def entity_type(name: str) -> type[Record]:
    """The record class of a canonical entity, or a KeyError naming the ones that exist."""
    try:
        return ENTITIES[name]
    except KeyError:
        raise KeyError(f"unknown entity {name!r}; known: {', '.join(sorted(ENTITIES))}") from None


__all__ = ["ENTITIES", "KEY_SEPARATOR", "Quantity", "Record", "entity_type"]
