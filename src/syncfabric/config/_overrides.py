"""Environment overrides: the same estate file in every environment, its differences in variables.

    SYNCFABRIC__STORE=postgresql://syncfabric:...@db/syncfabric
    SYNCFABRIC__BUS=nats://nats.plant.example:4222
    SYNCFABRIC__SYSTEMS__ERP_EU__CONNECTION__PORT=5433
    SYNCFABRIC__SYSTEMS__ERP_EU__CONNECTION__TLS__VERIFY=false      (a nested setting)

``NAME`` is the system name upper-cased with ``-`` and ``.`` written ``_``; names and fields match without regard
to case. Values stay text; connection settings are converted to their declared types when decoded. Overrides are
applied before validation, so a bad value is reported like any other, located by its variable's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncfabric.config._findings import Finding, JsonPath, format_path

PREFIX = "SYNCFABRIC"
_USAGE = "expected SYNCFABRIC__STORE, SYNCFABRIC__BUS or SYNCFABRIC__SYSTEMS__<NAME>__CONNECTION__<FIELD>"


def env_name(system: str) -> str:
    """How a system is named in a variable: ``erp-eu.main`` → ``ERP_EU_MAIN``."""
    return system.upper().replace("-", "_").replace(".", "_")


def apply_overrides(data: Any, environ: Mapping[str, str]) -> tuple[dict[JsonPath, str], list[Finding]]:
    """Apply every ``SYNCFABRIC__...`` variable to ``data`` in place.

    Returns which variable set which path (to locate problems in overridden values) and the variables that
    could not be applied."""
    applied: dict[JsonPath, str] = {}
    findings: list[Finding] = []
    for variable in sorted(environ):
        parts = variable.split("__")
        if len(parts) < 2 or parts[0].upper() != PREFIX:
            continue
        problem = _apply(data, [part.lower() for part in parts[1:]], environ[variable], variable, applied)
        if problem:
            findings.append(Finding(problem, path=None, where=variable))
    return applied, findings


def _apply(data: Any, parts: list[str], value: str, variable: str, applied: dict[JsonPath, str]) -> str | None:
    if not isinstance(data, dict):
        return None  # the document itself is not a mapping: structural validation says so
    if parts in (["store"], ["bus"]):
        data[parts[0]] = value
        applied[(parts[0],)] = variable
        return None
    if len(parts) < 4 or parts[0] != "systems" or parts[2] != "connection" or not all(parts[3:]):
        return f"unknown override: {_USAGE}"
    systems = data.get("systems")
    if not isinstance(systems, dict):
        return None
    matches = [name for name in systems if env_name(str(name)).lower() == parts[1]]
    if len(matches) != 1:
        known = ", ".join(f"{name} ({env_name(name)})" for name in sorted(systems)) or "none"
        what = "no system" if not matches else f"several systems ({', '.join(matches)})"
        return f"{what} named {parts[1].upper()!r} in the estate; systems: {known}"
    system = systems[matches[0]]
    if not isinstance(system, dict):
        return None
    target: Any = system.setdefault("connection", {})
    path: JsonPath = ("systems", matches[0], "connection")
    for index, field in enumerate(parts[3:]):
        if not isinstance(target, dict):
            return f"cannot set {field!r} inside {format_path(path)}: it is not a mapping"
        key = next((existing for existing in target if str(existing).lower() == field), field)
        path = (*path, key)
        if index == len(parts) - 4:
            target[key] = value
        else:
            target = target.setdefault(key, {})
    applied[path] = variable
    return None
