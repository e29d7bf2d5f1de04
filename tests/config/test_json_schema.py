"""The JSON Schema editors use is generated from the estate Structs; the committed copy must match."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator

from syncfabric.config import estate_json_schema

COMMITTED = Path(__file__).resolve().parents[2] / "schemas" / "estate.schema.json"


def test_committed_schema_is_up_to_date() -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))

    assert committed == estate_json_schema(), (
        "schemas/estate.schema.json is out of date with syncfabric.config.schema; regenerate it with\n"
        "    syncfabric estate schema > schemas/estate.schema.json\n"
        "or, without the command line,\n"
        "    python -c \"import json; from syncfabric.config import estate_json_schema; "
        "print(json.dumps(estate_json_schema(), indent=2, ensure_ascii=False))\" > schemas/estate.schema.json"
    )


def test_schema_is_a_valid_draft_2020_12_schema_with_help() -> None:
    schema = estate_json_schema()

    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] and schema["description"]
    assert schema["required"] == ["systems"]
    assert {"System", "EnvRef", "Domain", "Sla", "Mapping", "Flow", "Rule"} <= set(schema["$defs"])
    flow = schema["$defs"]["Flow"]["properties"]
    assert "cron" in flow["schedule"]["description"]


def test_schema_is_a_fresh_copy() -> None:
    estate_json_schema()["title"] = "changed"

    assert estate_json_schema()["title"] == "syncfabric estate"
