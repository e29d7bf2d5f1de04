"""``syncfabric bus relay`` and ``syncfabric bus status`` on an estate with an embedded and with a NATS bus."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncfabric.bus import open_bus
from syncfabric.cli import app
from syncfabric.store import IncomingRecord, open_store

runner = CliRunner()


def _estate(tmp_path: Path, bus: str | None) -> Path:
    estate = tmp_path / "estate.yaml"
    estate.write_text("name: plant\nstore: sqlite:///state/store.db\n" + (f"bus: {bus}\n" if bus else "")
                      + "systems: {}\n")
    with open_store(f"sqlite:///{tmp_path}/state/store.db") as store, store.transaction() as tx:
        tx.apply("item", [IncomingRecord(f"I{n}", b"{}") for n in range(25)])
    return estate


def test_the_embedded_bus_needs_no_relay_and_shows_its_consumers(tmp_path: Path) -> None:
    estate = _estate(tmp_path, None)
    relayed = runner.invoke(app, ["bus", "relay", "--once", "-e", str(estate)])
    assert relayed.exit_code == 0 and "needs no relay" in relayed.output
    with open_store(f"sqlite:///{tmp_path}/state/store.db") as store:
        sub = open_bus(None, store).subscribe("planning", worker="w1")
        batch = sub.fetch(max_messages=10)
        assert batch is not None
        batch.ack()
        status = runner.invoke(app, ["bus", "status", "-e", str(estate)])
        sub.close()
    assert status.exit_code == 0, status.output
    row = next(line for line in status.output.splitlines() if "planning" in line)
    assert [cell.strip() for cell in row.split("│")[1:6]] == ["planning", "1", "15", "0", "w1"]
    assert "change log head seq 25" in status.output


def test_a_bad_bus_url_is_named(tmp_path: Path) -> None:
    estate = _estate(tmp_path, "nats://127.0.0.1:4222?partitons=2")
    result = runner.invoke(app, ["bus", "status", "-e", str(estate)])
    assert result.exit_code == 2 and "unknown option 'partitons'" in result.output and "$.bus" in result.output


@pytest.mark.nats
def test_relay_once_then_status_on_nats(tmp_path: Path, nats_url: str) -> None:
    stream = f"T{uuid.uuid4().hex[:12]}"
    estate = _estate(tmp_path, f"{nats_url}?partitions=2&stream={stream}")
    relayed = runner.invoke(app, ["bus", "relay", "--once", "-e", str(estate)])
    assert relayed.exit_code == 0, relayed.output
    assert "published 25 changes (25 new)" in relayed.output
    again = runner.invoke(app, ["bus", "relay", "--once", "-e", str(estate)])  # the lease was given back
    assert again.exit_code == 0 and "published 0 changes" in again.output
    with open_store(f"sqlite:///{tmp_path}/state/store.db") as store:
        bus = open_bus(f"{nats_url}?partitions=2&stream={stream}", store)
        try:
            sub = bus.subscribe("planning", worker="w1")
            batch = sub.fetch(max_messages=100)  # one partition's changes
            assert batch is not None
            batch.ack()
            taken = len(batch)
            status = runner.invoke(app, ["bus", "status", "-e", str(estate)])
            sub.close()
        finally:
            bus.call("delete", bus._js.delete_stream(stream))  # type: ignore[attr-defined]
            bus.close()
    assert status.exit_code == 0, status.output
    assert "head seq 25, relayed seq 25 (no relay running)" in status.output
    row = next(line for line in status.output.splitlines() if "planning" in line)
    assert [cell.strip() for cell in row.split("│")[1:6]] == ["planning", "2", str(25 - taken), "0", "w1"]


@pytest.mark.nats
def test_the_foreground_relay_publishes_as_changes_arrive_and_stops_on_sigterm(tmp_path: Path, nats_url: str) -> None:
    stream = f"T{uuid.uuid4().hex[:12]}"
    url = f"{nats_url}?stream={stream}&partitions=1"
    estate = _estate(tmp_path, url)
    relay = subprocess.Popen([sys.executable, "-m", "syncfabric.cli", "bus", "relay", "-e", str(estate)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open_store(f"sqlite:///{tmp_path}/state/store.db") as store:
        bus = open_bus(url, store)
        try:
            with store.transaction() as tx:
                tx.apply("item", [IncomingRecord(f"J{n}", b"{}") for n in range(10)])
            deadline = time.monotonic() + 30
            while bus.status().published != 35:
                assert relay.poll() is None, relay.stdout.read()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the relay did not publish the new changes"
                time.sleep(0.1)
            os.kill(relay.pid, signal.SIGTERM)
            out, _ = relay.communicate(timeout=30)
            assert relay.returncode == 0, out
            assert "relay stopped: published 35 changes (35 new)" in out
            assert bus.status().relay is None  # the lease was given back
        finally:
            if relay.poll() is None:
                relay.kill()
            bus.call("delete", bus._js.delete_stream(stream))  # type: ignore[attr-defined]
            bus.close()
