"""Leases on flow runs: one run of a flow at a time across processes, and a killed process's lease taken over."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from syncfabric.config import load_estate
from syncfabric.flows.lease import LeaseBusy, Leases
from syncfabric.flows.runtime import Runtime
from syncfabric.sandbox.legacy_erp import LegacyErp
from syncfabric.store import RunStatus, Store

EXAMPLE = Path(__file__).parents[2] / "examples" / "walking-skeleton" / "estate.yaml"


def test_a_lease_held_by_a_live_process_is_refused_and_one_of_a_dead_process_taken_over(store: Store) -> None:
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        other = Leases(store, holder=f"{socket.gethostname()}:{alive.pid}:x")
        with other.hold("flow:items-in"):
            mine = Leases(store)
            with pytest.raises(LeaseBusy, match="items-in is running elsewhere"), mine.hold("flow:items-in"):
                pass
            alive.kill()
            alive.wait()
            with mine.hold("flow:items-in"):  # its process is gone: taken over at once
                assert store.lease_holder("flow:items-in") == mine.holder
                with mine.hold("flow:items-in"):  # held already: nested holding is a no-op
                    pass
                assert store.lease_holder("flow:items-in") == mine.holder
            assert store.lease_holder("flow:items-in") is None
    finally:
        alive.kill()
    remote = Leases(store, holder="another-host:1:x")
    assert store.acquire_lease("flow:items-in", remote.holder, 60)
    # A process on another machine cannot be checked: its lease is waited out.
    with pytest.raises(LeaseBusy), Leases(store).hold("flow:items-in"):
        pass


def test_sync_refuses_a_flow_running_elsewhere_and_closes_runs_whose_process_died(tmp_path: Path) -> None:
    LegacyErp(tmp_path / "drop" / "erp-legacy", seed=1, item_count=20).export()
    (tmp_path / "estate.yaml").write_text(EXAMPLE.read_text())
    with Runtime(load_estate(tmp_path / "estate.yaml", environ={})) as runtime:
        dead_run = runtime.store.start_run("items-in")  # a run whose process was killed
        assert runtime.store.acquire_lease("flow:items-in", "another-host:1:x", 60)
        busy = subprocess.run([sys.executable, "-m", "syncfabric.cli", "sync", "items-in", "--estate",
                               str(tmp_path / "estate.yaml")], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "COLUMNS": "200"})
        assert busy.returncode == 1
        assert "items-in is running elsewhere" in busy.stderr
        runtime.store.release_lease("flow:items-in", "another-host:1:x")

        result = runtime.run_flow("items-in")
        assert result.inserted == 20
        runs = {run.id: run for run in runtime.store.runs("items-in")}
        assert runs[dead_run].status is RunStatus.FAILED
        assert "interrupted" in str(runs[dead_run].detail["error"])
        assert runtime.store.lease_holder("flow:items-in") is None
