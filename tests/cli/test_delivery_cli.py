"""The delivery commands as a user runs them: deliver, deadletter, replay."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from syncfabric.cli import app
from syncfabric.sandbox.legacy_erp import LegacyErp
from syncfabric.sandbox.planning_platform import create_app
from syncfabric.sandbox.server import serve

EXAMPLE = Path(__file__).parents[2] / "examples" / "walking-skeleton" / "estate.yaml"
INBOUND = ["locations-in", "items-in", "item-locations-in", "inventory-in"]
runner = CliRunner()


@pytest.fixture
def estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    shutil.copy(EXAMPLE, tmp_path / "estate.yaml")
    erp = LegacyErp(tmp_path / "drop" / "erp-legacy", seed=5, item_count=12)
    erp.export()
    with serve(create_app(token="t0ken")) as url:
        monkeypatch.setenv("PLANNING_TOKEN", "t0ken")
        monkeypatch.setenv("SYNCFABRIC__SYSTEMS__PLANNING__CONNECTION__BASE_URL", url)
        monkeypatch.setenv("SYNCFABRIC_ESTATE", str(tmp_path / "estate.yaml"))
        assert runner.invoke(app, ["sync", *INBOUND]).exit_code == 0
        yield erp, url


def test_deliver_until_idle_sends_the_backlog_and_shows_counts(estate) -> None:
    erp, url = estate
    total = sum(len(rows) for rows in erp.rows.values())

    result = runner.invoke(app, ["deliver", "planning-out", "--until-idle"])

    assert result.exit_code == 0, result.output
    assert "Continuous delivery" in result.output and f"{total:,}" in result.output
    received = httpx.get(f"{url}/api/_sandbox/received").json()
    assert sum(received["records"].values()) >= total
    again = runner.invoke(app, ["sync", "planning-out"])
    assert again.exit_code == 0 and "planning-out" in again.output
    assert httpx.get(f"{url}/api/_sandbox/received").json()["write_requests"] == received["write_requests"]


def test_deliver_refuses_an_inbound_flow(estate) -> None:
    result = runner.invoke(app, ["deliver", "items-in", "--until-idle"])
    assert result.exit_code == 2
    assert "not an outbound flow" in result.output
