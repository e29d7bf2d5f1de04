"""The event catalog: every business event type with its versioned JSON Schema, its owning system and its topic.

The schema of an event type is the JSON Schema of its canonical entity (:mod:`syncfabric.model.schema`), so it
cannot drift from the model; its ``version`` is declared here together with a fingerprint of the schema, and a test
fails when the model changes an event's schema without a new version. Topics read ``mfg.<subject>.<verb>.<site>``
(``mfg.inventory.adjusted.P100``); on MQTT the dots are slashes (``mfg/inventory/adjusted/P100``), and a flow
subscribes to every site with ``mfg/inventory/adjusted/+``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncfabric.model.schema import entity_schema

SCHEMA_ID = "urn:syncfabric:event:{topic}:v{version}"
NO_SITE = "_"
"""The site part of a topic for an event that concerns none of our locations (a milestone at a port)."""


@dataclass(frozen=True, slots=True)
class EventType:
    """One business event type: what it is called, where it is published, who owns it, and its schema."""

    name: str
    """The event's name, in the past tense: ``InventoryAdjusted``."""
    entity: str
    """The canonical entity an event of this type is stored as."""
    subject: str
    """The topic without its site: ``mfg.inventory.adjusted``."""
    owner: str
    """The kind of system that publishes it and is its system of record: mes, quality, logistics, supplier, erp."""
    version: int
    fingerprint: str
    """The first 16 hex digits of the SHA-256 of the schema it had when ``version`` was set."""
    site_field: str = "location_id"
    """The field of the event holding the site of its topic."""

    def topic(self, site: str | None) -> str:
        return f"{self.subject}.{site or NO_SITE}"

    @property
    def mqtt_filter(self) -> str:
        """The MQTT topic filter for this event type at every site."""
        return self.subject.replace(".", "/") + "/+"

    def mqtt_topic(self, site: str | None) -> str:
        return self.topic(site).replace(".", "/")

    @property
    def schema_id(self) -> str:
        return SCHEMA_ID.format(topic=self.subject, version=self.version)

    def schema(self) -> dict[str, Any]:
        """The event's JSON Schema (draft 2020-12): its entity's, with the event's id, version, topic and owner."""
        generated = entity_schema(self.entity)
        return {
            "$schema": generated.pop("$schema"),
            "$id": self.schema_id,
            "title": self.name,
            "x-event": {"name": self.name, "version": self.version, "topic": self.topic("{site}"),
                        "owner": self.owner, "entity": self.entity, "site_field": self.site_field},
            **{key: value for key, value in generated.items() if key != "title"},
        }

    def current_fingerprint(self) -> str:
        return fingerprint(entity_schema(self.entity))

    @property
    def summary(self) -> str:
        return str(entity_schema(self.entity).get("description", "")).split("\n", 1)[0]


def fingerprint(schema: dict[str, Any]) -> str:
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


EVENT_TYPES: tuple[EventType, ...] = (
    EventType("MachineDowntimeReported", "machine_downtime", "mfg.machine.down", "mes", 1, "069ec1e2ba77cd53"),
    EventType("QualityHoldChanged", "quality_hold", "mfg.quality.hold", "quality", 1, "e2592e672a3fdef0"),
    EventType("DemandSpikeDetected", "demand_spike", "mfg.demand.spike", "erp", 1, "e96f012d70b71bf3"),
    EventType("SupplierDelayAnnounced", "supplier_delay", "mfg.supplier.delayed", "supplier", 1,
              "1f7ae69e95dcefa2"),
    EventType("ProductionCompleted", "production_completion", "mfg.production.completed", "mes", 1,
              "f9a0589d0083f009"),
    EventType("InventoryAdjusted", "inventory_movement", "mfg.inventory.adjusted", "mes", 1, "e82eb3759dfa24d3"),
    EventType("ShipmentMilestoneReached", "shipment_milestone", "mfg.shipment.milestone", "logistics", 1,
              "41f0664c9c117359"),
)
"""Every business event type. Raise an event's version (and set its fingerprint) when its schema changes."""

_BY_KEY = {key: event for event in EVENT_TYPES for key in (event.entity, event.name, event.subject)}


def event_type(name: str) -> EventType:
    """An event type by its entity (``inventory_movement``), name (``InventoryAdjusted``) or subject."""
    try:
        return _BY_KEY[name]
    except KeyError:
        known = ", ".join(event.entity for event in EVENT_TYPES)
        raise KeyError(f"{name!r} is not an event type of the catalog; event types: {known}") from None


def write_event_schemas(folder: Path) -> list[Path]:
    """Write ``<subject>.v<version>.schema.json`` for every event type into ``folder``; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for event in EVENT_TYPES:
        path = folder / f"{event.subject}.v{event.version}.schema.json"
        path.write_text(json.dumps(event.schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written
