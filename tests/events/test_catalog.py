"""The event catalog: every business event type, versioned schemas from the model, topics, docs, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import msgspec
import pytest
from typer.testing import CliRunner

from syncfabric.cli import app
from syncfabric.events.catalog import EVENT_TYPES, event_type, write_event_schemas
from syncfabric.model import ENTITIES, events
from syncfabric.model.events import BusinessEvent
from tests.events.support import downtime

DOCS = Path(__file__).parents[2] / "docs" / "events.md"
EXECUTION_EVENTS = {"production_completion", "inventory_movement", "shipment_milestone"}


def test_every_business_event_and_execution_event_is_in_the_catalog() -> None:
    business = {cls.entity for cls in vars(events).values()
                if isinstance(cls, type) and issubclass(cls, BusinessEvent) and cls.entity}
    assert business == {"machine_downtime", "supplier_delay", "quality_hold", "demand_spike"}
    assert {event.entity for event in EVENT_TYPES} == business | EXECUTION_EVENTS
    assert all(event.entity in ENTITIES for event in EVENT_TYPES)
    assert len({event.subject for event in EVENT_TYPES}) == len(EVENT_TYPES)


@pytest.mark.parametrize("event", EVENT_TYPES, ids=lambda event: event.name)
def test_a_schema_change_needs_a_new_version(event) -> None:
    assert event.current_fingerprint() == event.fingerprint, (
        f"the schema of {event.name} changed: raise its version (now {event.version}) and set its fingerprint "
        f"to {event.current_fingerprint()!r} in syncfabric/events/catalog.py"
    )


def test_topics_and_look_up() -> None:
    adjusted = event_type("inventory_movement")
    assert adjusted is event_type("InventoryAdjusted") is event_type("mfg.inventory.adjusted")
    assert adjusted.topic("P100") == "mfg.inventory.adjusted.P100"
    assert adjusted.mqtt_topic("P100") == "mfg/inventory/adjusted/P100"
    assert adjusted.mqtt_filter == "mfg/inventory/adjusted/+"
    assert event_type("shipment_milestone").topic(None) == "mfg.shipment.milestone._"
    with pytest.raises(KeyError, match="'item' is not an event type"):
        event_type("item")


def test_written_schemas_are_valid_versioned_and_agree_with_ingest(tmp_path: Path) -> None:
    written = write_event_schemas(tmp_path)
    assert sorted(path.name for path in written) == sorted(f"{e.subject}.v{e.version}.schema.json"
                                                           for e in EVENT_TYPES)
    schema = json.loads((tmp_path / "mfg.machine.down.v1.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] == "urn:syncfabric:event:mfg.machine.down:v1"
    assert schema["x-event"] == {"name": "MachineDowntimeReported", "version": 1, "topic": "mfg.machine.down.{site}",
                                 "owner": "mes", "entity": "machine_downtime", "site_field": "location_id"}
    validator = jsonschema.Draft202012Validator(schema)
    good = msgspec.to_builtins(msgspec.convert(downtime(1), ENTITIES["machine_downtime"]))
    assert list(validator.iter_errors(good)) == []
    errors = list(validator.iter_errors({**good, "work_center_id": ""}))
    assert [list(error.path) for error in errors] == [["work_center_id"]]


def test_docs_list_every_event_type() -> None:
    text = DOCS.read_text()
    for event in EVENT_TYPES:
        row = f"| {event.name} | v{event.version} | `{event.topic('<site>')}` | {event.owner} | `{event.entity}` |"
        assert row in text, f"docs/events.md lacks the row {row}"


def test_events_list_and_schema_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["events", "list"])
    assert listed.exit_code == 0, listed.output
    for event in EVENT_TYPES:
        assert event.name in listed.output and event.topic("<site>") in listed.output
    written = runner.invoke(app, ["events", "schema", "-o", str(tmp_path / "schemas")])
    assert written.exit_code == 0, written.output
    assert len(list((tmp_path / "schemas").glob("*.v1.schema.json"))) == len(EVENT_TYPES)


def test_the_shipped_event_schemas_are_up_to_date(tmp_path: Path) -> None:
    shipped = Path(__file__).parents[2] / "schemas" / "events"
    for path in write_event_schemas(tmp_path):
        committed = shipped / path.name
        assert committed.exists() and committed.read_text() == path.read_text(), (
            f"schemas/events/{path.name} is out of date; regenerate with `syncfabric events schema -o schemas/events`")
    assert sorted(p.name for p in shipped.iterdir()) == sorted(p.name for p in tmp_path.iterdir())
