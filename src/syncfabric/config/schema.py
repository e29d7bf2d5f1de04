"""The estate file's shape: systems, domains, mappings and flows.

These Structs are the single source of truth: the JSON Schema shipped for editors (``syncfabric estate schema``)
is generated from them, and :func:`syncfabric.config.load_estate` decodes into them after validation.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64,
                                   description="lower-case name: letters, digits, '-', '_', '.'")]

SyncModel = Literal["batch_full", "batch_net_change", "near_real_time", "event", "request_response"]


class EnvRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A secret given by reference: the name of the environment variable that holds it. Never the secret itself."""

    env: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class System(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A system syncfabric talks to."""

    kind: Annotated[str, msgspec.Meta(description="connector kind: files, planning, ...")]
    description: str = ""
    connection: dict[str, Any] = {}
    """Connector-specific settings; checked against the connector kind's own configuration."""
    credentials: dict[str, EnvRef] = {}
    """Secrets by environment-variable reference, e.g. ``token: {env: PLANNING_TOKEN}``."""


class Sla(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    freshness_minutes: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """The newest change at a target may be at most this old."""
    completeness: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    """Share of source keys that must be present and equal at the target after reconciliation."""


class Domain(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How one canonical entity is kept in sync: its sync model, schedule and SLA."""

    entity: str
    sync_model: SyncModel = "batch_full"
    schedule: str | None = None
    """A cron expression (``0 2 * * *``) for batch models."""
    sla: Sla = Sla()


class Mapping(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How one system's records map to one canonical entity.

    ``fields`` maps each canonical field to: a source field name or dotted path (``"ITEM_NO"``, ``"header.id"``),
    ``{const: VALUE}`` for a constant, or a nested mapping for a nested record (``on_hand: {value: QTY, unit: UOM}``).
    """

    system: Name
    entity: str
    version: Annotated[int, msgspec.Meta(ge=1)] = 1
    fields: dict[str, Any]


class Flow(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A movement of records: ``inbound`` (system → canonical store) or ``outbound`` (store → system)."""

    direction: Literal["inbound", "outbound"]
    system: Name
    entities: list[str]
    """Canonical entities this flow moves; an inbound flow moves one."""
    mode: Literal["full", "changes"] = "changes"
    """inbound: ``full`` reads every record (missing keys become deletions when the snapshot is complete),
    ``changes`` reads what changed since the checkpoint. outbound: ``full`` sends the current state,
    ``changes`` sends changes since the target's checkpoint."""
    source: str | None = None
    """inbound: the system's name for what is read (a file pattern, a table, an endpoint); defaults to the entity."""
    mapping: Name | None = None
    """inbound: the mapping to apply (required)."""
    schedule: str | None = None
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000


class Estate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A whole estate: every system, domain, mapping and flow syncfabric runs for one manufacturer."""

    version: Literal[1] = 1
    name: str = "estate"
    store: str = "sqlite:///.syncfabric/syncfabric.db"
    """Store URL; a relative SQLite path is relative to the estate file's folder."""
    systems: dict[Name, System]
    domains: dict[Name, Domain] = {}
    mappings: dict[Name, Mapping] = {}
    flows: dict[Name, Flow] = {}
