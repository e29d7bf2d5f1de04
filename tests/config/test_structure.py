"""Structural problems, found against the JSON Schema: each in words, at its line, with its path."""

from __future__ import annotations

from syncfabric.config import validate_estate_file
from tests.config.conftest import VALID, line_of


def problems_for(write_estate, text: str) -> tuple[str, list[str]]:
    path = write_estate(text)
    return str(path), validate_estate_file(path, environ={})


def test_unknown_field_lists_the_known_ones(write_estate) -> None:
    text = VALID.replace('    schedule: "0 2 * * *"', '    shedule: "0 2 * * *"')
    path, problems = problems_for(write_estate, text)

    assert problems == [
        f"{path}:{line_of(text, 'shedule')}:5: unknown field 'shedule' (expected one of: batch_size, delivery, "
        f"direction, entities, keep_raw, mapping, missed, mode, parallel, schedule, source, system, watermark, "
        f"write_back); did you mean 'schedule'? "
        f"@ $.flows.items-in.shedule"
    ]


def test_value_below_minimum(write_estate) -> None:
    text = VALID.replace("batch_size: 500", "batch_size: 0")
    path, problems = problems_for(write_estate, text)

    assert problems == [
        f"{path}:{line_of(text, 'batch_size')}:5: expected integer >= 1, got 0 @ $.flows.items-in.batch_size"
    ]


def test_value_not_among_the_choices(write_estate) -> None:
    text = VALID.replace("direction: outbound", "direction: outbund")
    path, problems = problems_for(write_estate, text)

    assert problems == [
        f"{path}:{line_of(text, 'outbund')}:5: expected one of 'inbound', 'outbound', got 'outbund' "
        f"@ $.flows.to-planning.direction"
    ]


def test_missing_required_field_is_located_at_its_parent(write_estate) -> None:
    text = VALID.replace("  planner:\n    kind: fake\n", "  planner:\n")
    path, problems = problems_for(write_estate, text)

    assert problems == [
        f"{path}:{line_of(text, '  planner:')}:3: missing required field 'kind' @ $.systems.planner"
    ]


def test_wrong_type_and_optional_values(write_estate) -> None:
    text = VALID.replace("mode: full", "mode: [full]").replace('schedule: "*/5 * * * *"', "schedule: 5")
    path, problems = problems_for(write_estate, text)

    assert problems == [
        f"{path}:{line_of(text, 'schedule: 5')}:5: expected string or null, got 5 @ $.domains.items.schedule",
        f"{path}:{line_of(text, 'mode: [full]')}:5: expected one of 'changes', 'full', 'plan_cut', got a list "
        f"@ $.flows.items-in.mode",
    ]


def test_bad_names(write_estate) -> None:
    text = VALID.replace("  to-planning:", "  To Planning:").replace("    mapping: erp-stock", "    mapping: Erp")
    path, problems = problems_for(write_estate, text)

    assert problems == [
        f"{path}:{line_of(text, 'mapping: Erp')}:5: expected a lower-case name: letters, digits, '-', '_', '.', "
        f"got 'Erp' @ $.flows.stock-in.mapping",
        f"{path}:{line_of(text, 'To Planning')}:3: invalid name 'To Planning': expected a lower-case name: "
        f"letters, digits, '-', '_', '.' @ $.flows['To Planning']",
    ]


def test_every_problem_in_one_file_is_reported_in_file_order(write_estate) -> None:
    text = """\
    version: 2
    systems:
      erp:
        knd: fake
    domains:
      items: {entity: item, sla: {completeness: 1.5}}
    flows:
      items-in:
        direction: inbound
        system: erp
        entities: []
        batch_size: 0
    """
    path, problems = problems_for(write_estate, text)

    assert problems == [
        f"{path}:1:1: expected 1, got 2 @ $.version",
        f"{path}:3:3: missing required field 'kind' @ $.systems.erp",
        f"{path}:4:5: unknown field 'knd' (expected one of: connection, credentials, description, kind); "
        f"did you mean 'kind'? @ $.systems.erp.knd",
        f"{path}:6:31: expected number <= 1, got 1.5 @ $.domains.items.sla.completeness",
        f"{path}:11:5: expected at least 1 item(s), got 0 @ $.flows.items-in.entities",
        f"{path}:12:5: expected integer >= 1, got 0 @ $.flows.items-in.batch_size",
    ]


def test_credentials_must_be_references(write_estate) -> None:
    text = VALID.replace("token: {env: ERP_TOKEN}", "token: plain-9c8b7a")
    path, problems = problems_for(write_estate, text)

    assert problems == [
        f"{path}:{line_of(text, 'plain-9c8b7a')}:7: expected mapping, got a string "
        f"@ $.systems.erp.credentials.token"
    ]


def test_semantic_checks_wait_for_a_valid_structure(write_estate) -> None:
    text = VALID.replace("batch_size: 500", "batch_size: 0").replace("system: planner", "system: nowhere")
    _, problems = problems_for(write_estate, text)

    assert len(problems) == 1 and "batch_size" in problems[0]


def test_integers_are_whole_numbers_not_floats_or_booleans(write_estate) -> None:
    text = VALID.replace("batch_size: 500", "batch_size: 500.0").replace("version: 1", "version: true")
    path, problems = problems_for(write_estate, text)

    assert problems == [
        f"{path}:1:1: expected 1, got true @ $.version",
        f"{path}:{line_of(text, 'batch_size')}:5: expected integer, got 500.0 @ $.flows.items-in.batch_size",
    ]
