"""The command line as a user runs it: exit codes, what it prints, what it never prints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncfabric.cli import app
from syncfabric.model import ENTITIES
from syncfabric.sandbox.legacy_erp import LegacyErp
from tests.fixtures import WALKING_SKELETON, walking_skeleton

runner = CliRunner()


def test_validate_accepts_the_example_estate() -> None:
    result = runner.invoke(app, ["validate", str(WALKING_SKELETON)])
    assert result.exit_code == 0, result.output
    assert "is valid" in result.output


def test_validate_reports_every_problem_with_line_and_path(tmp_path: Path) -> None:
    broken = WALKING_SKELETON.read_text().replace("mode: full\n    source: \"items_*.csv\"",
                                         "mode: fulll\n    source: \"items_*.csv\"")
    broken = broken.replace("    kind: planning\n", "    kind: planning\n    colour: blue\n")
    estate = tmp_path / "estate.yaml"
    estate.write_text(broken)

    result = runner.invoke(app, ["validate", str(estate)])

    assert result.exit_code == 2
    lines = [line.strip() for line in result.output.splitlines() if "estate.yaml:" in line]
    assert len(lines) == 2, result.output
    assert any("$.flows.items-in.mode" in line and "'fulll'" in line for line in lines)
    assert any("unknown field 'colour'" in line and "$.systems.planning.colour" in line for line in lines)
    for line in lines:
        file_line = int(line.split(":")[1])
        assert "fulll" in broken.splitlines()[file_line - 1] or "colour" in broken.splitlines()[file_line - 1]


def test_a_broken_estate_runs_nothing(tmp_path: Path) -> None:
    estate = tmp_path / "estate.yaml"
    estate.write_text(WALKING_SKELETON.read_text().replace("direction: outbound", "direction: sideways"))
    result = runner.invoke(app, ["sync", "--all", "--estate", str(estate)])
    assert result.exit_code == 2
    assert "$.flows.planning-out.direction" in result.output
    assert not (tmp_path / ".syncfabric").exists()


def test_model_list_and_schema(tmp_path: Path) -> None:
    listed = runner.invoke(app, ["model", "list"])
    assert listed.exit_code == 0
    for name in ("item", "inventory_balance", "planned_order", "machine_downtime"):
        assert name in listed.output
    written = runner.invoke(app, ["model", "schema", "--out", str(tmp_path)])
    assert written.exit_code == 0
    assert sorted(p.stem.removesuffix(".schema") for p in tmp_path.glob("*.json")) == sorted(ENTITIES)
    schema = json.loads((tmp_path / "inventory_balance.schema.json").read_text())
    assert schema["x-key"] == ["item_id", "location_id", "lot"]


@pytest.fixture
def demo_estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with walking_skeleton(tmp_path, seed=11, item_count=15, token="t0ken-value") as skeleton:
        skeleton.use(monkeypatch)
        yield skeleton.erp


def test_sync_status_and_quarantine(demo_estate: LegacyErp) -> None:
    demo_estate.add_bad_rows("inventory", ["RM-00001", "P100", "", "-x", "EA", "0", "0", "2026-11-02T19:00:00Z"])
    demo_estate.export(("inventory",))

    synced = runner.invoke(app, ["sync", "--all"])
    assert synced.exit_code == 0, synced.output
    assert "planning-out" in synced.output and "What moved" in synced.output

    status = runner.invoke(app, ["status"])
    assert status.exit_code == 0
    row = next(line for line in status.output.splitlines() if "inventory-in" in line)
    assert "succeeded" in row and row.rstrip(" │").endswith("1")
    assert "t0ken-value" not in synced.output + status.output

    listed = runner.invoke(app, ["quarantine", "list", "--reason", "decimal"])
    assert listed.exit_code == 0
    assert "$.on_hand.value" in listed.output and "1 quarantined" in listed.output


def test_missing_secret_is_named_not_printed(demo_estate: LegacyErp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLANNING_TOKEN")
    result = runner.invoke(app, ["sync", "planning-out"])
    assert result.exit_code == 2
    assert "PLANNING_TOKEN" in result.output


def test_unknown_flow_is_an_error(demo_estate: LegacyErp) -> None:
    result = runner.invoke(app, ["sync", "no-such-flow"])
    assert result.exit_code == 2
    assert "unknown flow 'no-such-flow'" in result.output


def test_metrics_serve_uses_the_estate_given_to_the_metrics_group(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import httpx

    shutil.copy(WALKING_SKELETON, tmp_path / "estate.yaml")
    elsewhere = tmp_path / "elsewhere"  # no estate.yaml here: the default would not be found
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SYNCFABRIC_ESTATE"}
    env.update(PLANNING_TOKEN="t0ken-value", PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "syncfabric.cli", "metrics", "--estate", str(tmp_path / "estate.yaml"), "serve",
         "--port", "0"], cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("metrics on http://127.0.0.1:"), line + server.stdout.read()
        scraped = httpx.get(line.split()[2], timeout=10).text
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert 'syncfabric_flow_runs_total{flow="planning-out",status="succeeded"} 0.0' in scraped


def test_metrics_prune_uses_the_estate_given_to_the_metrics_group(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(WALKING_SKELETON, tmp_path / "estate.yaml")
    monkeypatch.delenv("SYNCFABRIC_ESTATE", raising=False)
    monkeypatch.setenv("PLANNING_TOKEN", "t0ken-value")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # no estate.yaml here: the default would not be found
    result = runner.invoke(app, ["metrics", "--estate", str(tmp_path / "estate.yaml"), "prune", "--days", "0"])
    assert result.exit_code == 0, result.output
    assert "deleted 0 delivery-log rows" in result.output
    assert (tmp_path / ".syncfabric" / "syncfabric.db").exists()  # the estate's store, beside its file


def test_demo_refuses_two_demos_at_once() -> None:
    result = runner.invoke(app, ["demo", "--stream", "--walking-skeleton"])
    assert result.exit_code == 2
    assert "--stream and --walking-skeleton are two different demos" in result.output


def test_demo_names_the_mes_transports_it_knows() -> None:
    result = runner.invoke(app, ["demo", "--mes", "carrier-pigeon"])
    assert result.exit_code == 2
    assert "--mes is auto, mqtt or webhooks, not 'carrier-pigeon'" in result.output


def test_ids_that_name_nothing_are_refused_by_name(demo_estate: LegacyErp) -> None:
    result = runner.invoke(app, ["quarantine", "discard", "999"])
    assert result.exit_code == 1 and "no quarantine entry 999 (with these filters)" in result.output
    result = runner.invoke(app, ["deadletter", "discard", "999", "998"])
    assert result.exit_code == 1 and "no open dead letter 998, 999 (with these filters)" in result.output
