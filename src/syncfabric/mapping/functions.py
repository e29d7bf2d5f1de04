"""Registered mapping functions: the escape hatch for what the declarative field specs cannot say.

A function is registered explicitly under a name and used from the estate as
``{function: NAME, args: [COLUMN, {const: VALUE}, ...]}``; each argument is itself a field spec. A function that
raises ``ValueError`` (or ``TypeError``) makes a problem for the record, located at the field it fills::

    from syncfabric.mapping import functions

    @functions.register("weight_kg")
    def weight_kg(value: str, unit: str) -> Decimal:
        ...

Registration happens when the module that defines the function is imported. A spec may also name a function as
``module:function`` (``{function: "acme.mapping:weight_kg"}``), which imports the module itself; estate validation
reports a name that is neither registered nor importable.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register(name: str) -> Callable[[F], F]:
    """Register ``function`` under ``name``; registering another function under a taken name is an error."""

    def mark(function: F) -> F:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not function:
            raise ValueError(f"mapping function {name!r} is already registered ({existing.__qualname__})")
        _REGISTRY[name] = function
        return function

    return mark


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: str) -> Callable[..., Any]:
    """A registered function, or ``module:function`` imported; LookupError saying what is wrong."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    module_name, colon, attribute = name.partition(":")
    if not colon or not module_name or not attribute:
        raise LookupError(f"unknown function {name!r} (registered: {', '.join(names()) or 'none'}; "
                          f"or name it as module:function)")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise LookupError(f"function {name!r} cannot be loaded: {exc}") from None
    if not callable(function):
        raise LookupError(f"function {name!r} is not callable")
    return function


def names() -> list[str]:
    return sorted(_REGISTRY)


# --- built-in functions ---------------------------------------------------------------------------------------


@register("upper")
def _upper(value: Any) -> str:
    return str(value).upper()


@register("lower")
def _lower(value: Any) -> str:
    return str(value).lower()


@register("strip_leading_zeros")
def _strip_leading_zeros(value: Any) -> str:
    return str(value).lstrip("0") or "0"


@register("multiply")
def _multiply(value: Any, factor: Any) -> Decimal:
    try:
        return Decimal(str(value)) * Decimal(str(factor))
    except InvalidOperation:
        raise ValueError(f"expected decimals, got {value!r} and {factor!r}") from None
