"""Problems of the YAML itself: syntax, duplicate keys, keys that YAML reads as something other than text."""

from __future__ import annotations

import pytest

from syncfabric.config import load_estate, validate_estate_file
from syncfabric.errors import ConfigError
from tests.config.conftest import VALID, line_of


def test_syntax_error_is_located(write_estate) -> None:
    text = """\
    systems:
      erp:
        kind: fake
         connection: {}
    """
    path = write_estate(text)

    (problem,) = validate_estate_file(path, environ={})

    assert problem.startswith(f"{path}:{line_of(text, 'connection')}:")
    assert "invalid YAML" in problem


def test_unclosed_bracket_is_reported(write_estate) -> None:
    path = write_estate("systems: {erp: {kind: fake}\n")

    (problem,) = validate_estate_file(path, environ={})

    assert problem.startswith(f"{path}:2:1: invalid YAML")


def test_duplicate_keys_report_both_lines(write_estate) -> None:
    text = VALID.replace("    batch_size: 500\n", "    batch_size: 500\n    mode: changes\n")
    path = write_estate(text)

    problems = validate_estate_file(path, environ={})

    first, second = line_of(text, "mode: full"), line_of(text, "mode: changes")
    assert problems == [f"{path}:{second}:5: duplicate key 'mode' (first at line {first}, column 5) "
                        f"@ $.flows.items-in.mode"]


def test_duplicate_system_is_refused_by_load(write_estate) -> None:
    text = VALID.replace("  planner:\n", "  erp:\n")
    path = write_estate(text)

    with pytest.raises(ConfigError) as caught:
        load_estate(path, environ={})

    assert any(f"duplicate key 'erp' (first at line {line_of(text, '  erp:')}" in problem
               for problem in caught.value.problems)


def test_merge_keys_are_not_duplicates(write_estate) -> None:
    text = VALID + """\
  base: &base
    direction: outbound
    system: planner
    entities: [location]
  spare:
    <<: *base
    entities: [item]
"""
    path = write_estate(text)

    assert validate_estate_file(path, environ={}) == []
    assert load_estate(path, environ={}).estate.flows["spare"].entities == ["item"]


def test_keys_read_as_booleans_or_numbers_must_be_quoted(write_estate) -> None:
    text = VALID.replace("      item_id: ITEM_NO\n      description", "      on: ITEM_NO\n      description")
    path = write_estate(text)

    problems = validate_estate_file(path, environ={})

    assert f"{path}:{line_of(text, 'on: ITEM_NO')}:7: key 'on' is read as a boolean, not as text; " \
           f"write it in quotes: 'on' @ $.mappings.erp-items.fields.on" in problems


def test_empty_file(write_estate) -> None:
    path = write_estate("")

    assert validate_estate_file(path, environ={}) == [f"{path}:1:1: expected mapping, got null @ $"]


def test_missing_file(tmp_path) -> None:
    path = tmp_path / "nowhere.yaml"

    (problem,) = validate_estate_file(path, environ={})

    assert problem.startswith(f"{path}: cannot read the estate file")


def test_dates_stay_text(write_estate) -> None:
    text = VALID.replace("base_unit: {const: EA}", "base_unit: {const: EA}\n      category: {const: 2024-01-01}")
    loaded = load_estate(write_estate(text), environ={})

    assert loaded.estate.mappings["erp-items"].fields["category"] == {"const": "2024-01-01"}
