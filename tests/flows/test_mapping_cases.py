"""Mapping tests as data (``syncfabric mapping test``): the shipped fixtures pass, and wrong expectations fail."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncfabric.cli import app
from syncfabric.config import load_estate
from syncfabric.errors import ConfigError
from syncfabric.flows.mapping_cases import load_cases, run_cases

runner = CliRunner()
EXAMPLE = Path(__file__).parents[2] / "examples" / "walking-skeleton"


def mapping_test(estate: Path, *args: str, code: int) -> str:
    result = runner.invoke(app, ["mapping", "test", *args, "--estate", str(estate)])
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def example(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLE / "estate.yaml", tmp_path / "estate.yaml")
    shutil.copytree(EXAMPLE / "mapping-tests", tmp_path / "mapping-tests")
    return tmp_path / "estate.yaml"


def test_the_shipped_mapping_tests_pass() -> None:
    files = sorted((EXAMPLE / "mapping-tests").glob("*.yaml"))
    assert len(files) >= 2
    estate = load_estate(EXAMPLE / "estate.yaml").estate
    cases = [case for file in files for case in load_cases(file, estate)]
    assert len(cases) >= 6 and {case.mapping for case in cases} == {"legacy-items", "legacy-inventory"}
    assert any(case.errors for case in cases) and any(case.expect for case in cases)
    assert [result.failures for result in run_cases(estate, cases)] == [[] for _ in cases]
    out = mapping_test(EXAMPLE / "estate.yaml", code=0)
    assert f"{len(cases)} of {len(cases)} mapping tests passed" in out


def test_a_wrong_expectation_fails_with_a_readable_diff(example: Path) -> None:
    items = example.parent / "mapping-tests" / "legacy-items.yaml"
    items.write_text(items.read_text().replace('unit_cost: "123.45"', 'unit_cost: "999"')
                     .replace("status: active          # the canonical default", "status: blocked"))
    out = mapping_test(example, code=1)
    assert "5 of 6 mapping tests passed" in out and "FAIL" in out
    assert "$.status: expected 'blocked', got 'active'" in out
    assert "$.unit_cost: expected '999', got '123.45'" in out
    assert "legacy-items.yaml:5" in out  # the failing case's line
    mapping_test(example, str(example.parent / "mapping-tests" / "legacy-inventory.yaml"), code=0)


def test_expected_errors_must_all_be_reported_and_nothing_else(example: Path) -> None:
    inventory = example.parent / "mapping-tests" / "legacy-inventory.yaml"
    text = inventory.read_text()
    inventory.write_text(text.replace('{path: $.on_hand, message: "on_hand must be ≥ 0"}',
                                      '{path: $.allocated, message: "on_hand must be ≥ 0"}')
                         .replace('ON_HAND: "3", UOM: CRATE', 'ON_HAND: "3", UOM: KG'))
    out = mapping_test(example, str(inventory), code=1)
    assert "expected error not reported: on_hand must be ≥ 0 @ $.allocated" in out
    assert "unexpected error: on_hand must be ≥ 0 @ $.on_hand" in out
    assert "expected errors, got a record:" in out and "$.on_hand.value: '3'" in out

    inventory.write_text(text.replace('ON_HAND: "250"', 'ON_HAND: "-250"'))
    out = mapping_test(example, str(inventory), code=1)
    assert "expected a record, got errors:" in out and "on_hand must be ≥ 0 @ $.on_hand" in out


def test_fixture_problems_are_reported_with_file_line_and_path(tmp_path: Path) -> None:
    estate = load_estate(EXAMPLE / "estate.yaml").estate
    bad = tmp_path / "bad.yaml"
    bad.write_text("mapping: legacy-itemz\ncases:\n  - name: x\n    input: {A: 1}\n    expect: {}\n    errors: [x]\n"
                   "  - input: 3\n    expect: {}\n")
    with pytest.raises(ConfigError) as raised:
        load_cases(bad, estate)
    problems = raised.value.problems
    assert f"{bad}:1:1: unknown mapping 'legacy-itemz'" in problems[0] and "@ $.mapping" in problems[0]
    assert any(p.startswith(f"{bad}:3:5: a case has either expect") and "@ $.cases[0]" in p for p in problems)
    assert any(f"{bad}:7:5: input: the raw record" in p and "@ $.cases[1].input" in p for p in problems)
    out = mapping_test(EXAMPLE / "estate.yaml", str(tmp_path / "none"), code=2)
    assert "no such mapping test file or folder" in out


def test_time_zones_of_a_fixture_convert_local_times(tmp_path: Path) -> None:
    estate = tmp_path / "estate.yaml"
    estate.write_text(
        "version: 1\nsystems: {erp: {kind: files, connection: {folder: drop}}}\n"
        "mappings:\n  stock:\n    system: erp\n    entity: inventory_balance\n    fields:\n"
        "      item_id: MATNR\n      location_id: WERKS\n      on_hand: {value: LABST, unit: MEINS}\n"
        '      as_of: {from: STAMP, datetime: {format: "%d.%m.%Y %H:%M", location: WERKS}}\n')
    (tmp_path / "mapping-tests").mkdir()
    (tmp_path / "mapping-tests" / "stock.yaml").write_text(
        "mapping: stock\ntime_zones: {DE-HAM: Europe/Berlin}\ncases:\n"
        "  - input: {MATNR: A, WERKS: DE-HAM, LABST: '5', MEINS: EA, STAMP: 01.03.2025 07:30}\n"
        "    expect: {item_id: A, location_id: DE-HAM, on_hand: {value: 5, unit: EA}, as_of: '2025-03-01T06:30:00Z'}\n")
    assert "1 of 1 mapping tests passed" in mapping_test(estate, code=0)


OUTBOUND_ESTATE = """\
version: 1
systems: {wms: {kind: files, connection: {folder: out}}}
code_maps:
  plants: {values: {"1000": P1}}
mappings:
  stock-out:
    system: wms
    entity: inventory_balance
    direction: outbound
    fields:
      MATNR: {from: item_id, xref: {entity: item}}
      WERKS: {from: location_id, code_map: plants}
      MENGE: on_hand.value
      STAMP: {from: as_of, datetime: {format: "%d.%m.%Y %H:%M", location: location_id}}
"""

OUTBOUND_CASES = """\
mapping: stock-out
time_zones: {P1: Europe/Berlin}
xref: {item: {FG-1: W-0001}}
cases:
  - name: a balance in the warehouse's shape
    input: {item_id: FG-1, location_id: P1, on_hand: {value: "5", unit: EA}, as_of: "2025-03-01T06:30:00Z"}
    expect: {MATNR: W-0001, WERKS: "1000", MENGE: 5, STAMP: "01.03.2025 07:30"}
  - name: an item the warehouse has no id for
    input: {item_id: FG-2, location_id: P1, on_hand: {value: "5", unit: EA}, as_of: "2025-03-01T06:30:00Z"}
    errors:
      - {path: $.MATNR, message: "no wms id for canonical item 'FG-2'"}
"""


def test_outbound_mapping_cases_map_canonical_input_to_the_targets_record(tmp_path: Path) -> None:
    estate = tmp_path / "estate.yaml"
    estate.write_text(OUTBOUND_ESTATE)
    (tmp_path / "mapping-tests").mkdir()
    cases = tmp_path / "mapping-tests" / "stock-out.yaml"
    cases.write_text(OUTBOUND_CASES)
    assert "2 of 2 mapping tests passed" in mapping_test(estate, code=0)

    cases.write_text(OUTBOUND_CASES.replace('WERKS: "1000"', 'WERKS: "2000"').replace("xref: {item: {FG-1: W-0001}}",
                                                                                      "xref: {item: {}}"))
    out = mapping_test(estate, code=1)
    assert "1 of 2 mapping tests passed" in out
    assert "expected a record, got errors:" in out and "no wms id for canonical item 'FG-1' in the cross-reference" \
        in out
