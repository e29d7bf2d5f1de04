"""A parallel full refresh (pages read and mapped in a worker process) stores exactly what mapping in the flow's own
process stores: records, change log, raw records, quarantine with file, line and key, deletions, skipped rows;
errors of the source arrive as the same errors; flows the worker cannot map run in-process. CSV exports in a drop
folder and real SQLite stores."""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from syncfabric.config import load_estate
from syncfabric.config.schema import Mapping, Rule
from syncfabric.connectors.files.configuration import FilesConfig
from syncfabric.connectors.files.connector import FilesConnector
from syncfabric.errors import ConnectorError
from syncfabric.flows.inbound import run_inbound
from syncfabric.flows.map_worker import worker_pages
from syncfabric.flows.result import FlowResult
from syncfabric.flows.runtime import Runtime
from syncfabric.mapping import FieldMap
from syncfabric.mapping.rules import RuleSet
from syncfabric.sandbox.legacy_erp import LegacyErp
from syncfabric.store import Store, open_store

FLOW = "item-locations-in"
COLUMNS = "ITEM_NO,SITE,LEAD_TIME_DAYS,PLANNER"
MAPPING = Mapping(system="erp", entity="item_location", fields={
    "item_id": "ITEM_NO", "location_id": "SITE", "lead_time_days": "LEAD_TIME_DAYS", "planner": "PLANNER"})


def drop(folder: Path, number: int, lines: list[str]) -> None:
    path = folder / f"item_locations_{number}.csv"
    path.write_text("\n".join([COLUMNS, *lines]) + "\n")
    os.utime(path, (1_700_000_000 + number, 1_700_000_000 + number))


def contents(store: Store) -> dict[str, Any]:
    """Everything a run leaves in the store, without the times and run ids that differ between runs."""
    return {
        "state": [(r.key, r.version, r.content_hash, r.deleted, r.payload)
                  for r in store.current("item_location", include_deleted=True)],
        "log": [(c.seq, c.key, c.version, c.op, c.content_hash, c.lineage.source_id, c.lineage.mapping_version)
                for c in store.changes(0, limit=100_000)],
        "raw": [(s.key, s.flow, s.source_id, s.raw) for s in store.sources("item_location")],
        "quarantine": sorted((q.record_key, q.location, tuple(q.reasons), q.payload) for q in store.quarantine()),
        "inputs": store.live_inputs("item_location"),
    }


def run_both(tmp_path: Path, exports: list[list[list[str]]], **options: Any) -> tuple[list[FlowResult], ...]:
    """Each export (a list of files, each a list of rows) as one full-refresh run, once mapping in-process and once
    in the worker, each in a store of its own; the two stores must end equal."""
    outcomes = []
    for parallel in (False, True):
        root = tmp_path / ("parallel" if parallel else "serial")
        (root / "drop").mkdir(parents=True)
        files = FilesConnector("erp", FilesConfig(folder="drop"), base_dir=root)
        files.page_size = 4
        results, number = [], 0
        with open_store(f"sqlite:///{root}/s.db") as store:
            for export in exports:
                for lines in export:
                    number += 1
                    drop(root / "drop", number, lines)
                results.append(run_inbound(store, FLOW, files, FieldMap("item-locations", MAPPING), mode="full",
                                           source="item_locations_*.csv", batch_id="b", parallel=parallel,
                                           **options))
            outcomes.append((results, contents(store)))
    (serial, serial_store), (parallel_results, parallel_store) = outcomes
    assert parallel_store == serial_store
    strip = [(r.records_in, r.inserted, r.updated, r.unchanged, r.deleted, r.quarantined, r.warnings)
             for r in serial]
    assert [(r.records_in, r.inserted, r.updated, r.unchanged, r.deleted, r.quarantined, r.warnings)
            for r in parallel_results] == strip
    return serial, parallel_results


ROWS = [f"I{n},P1,{n},ALEE" for n in range(1, 12)]


def test_a_parallel_full_refresh_stores_what_an_in_process_one_stores(tmp_path: Path) -> None:
    bad = [*ROWS[:3], "I4,P1,-4,ALEE", "I5,P1", *ROWS[5:]]  # a negative lead time, a short line
    edited = [*ROWS[1:6], "I7,P1,70,BTAN", *ROWS[7:], "I12,P1,12,ALEE", ROWS[2]]
    serial, _ = run_both(tmp_path, [[ROWS], [bad], [edited], [edited, ROWS]])
    counts = [(r.records_in, r.inserted, r.updated, r.unchanged, r.deleted, r.quarantined) for r in serial]
    assert counts == [
        (11, 11, 0, 0, 0, 0),
        (11, 0, 0, 9, 1, 2),  # I4 and I5 quarantined; I5, whose line could not be read, has no key: deleted
        (12, 1, 2, 9, 1, 0),  # I12 new, I5 back, I7 changed, I1 deleted; I4 (fine again) skipped as unchanged
        (23, 0, 2, 21, 1, 0),  # two files: the first as before, the second brings I1 and I7 back, drops I12
    ]


def test_flows_the_worker_cannot_map_exactly_run_in_process(tmp_path: Path, store: Store) -> None:
    files = FilesConnector("erp", FilesConfig(folder="drop"), base_dir=tmp_path)
    rules = RuleSet("item_location", [Rule(kind="range", field="lead_time_days", max=5, severity="warn")])
    field_map = FieldMap("item-locations", MAPPING)
    padded = FieldMap("item-locations", Mapping(system="erp", entity="item_location", fields={
        **MAPPING.fields, "item_id": {"from": "ITEM_NO", "pad": {"width": 8}}}))
    common: dict[str, Any] = {"source": "item_locations_*.csv", "cursor": None, "batch_id": ""}
    assert worker_pages(store, FLOW, files, field_map, rules=rules, **common) is None
    assert worker_pages(store, FLOW, files, padded, rules=None, **common) is None

    run_both(tmp_path, [[ROWS], [ROWS]], rules=rules)  # still right: mapped in-process


def test_an_error_reading_the_source_arrives_as_the_same_error(tmp_path: Path) -> None:
    errors = []
    for parallel in (False, True):
        root = tmp_path / str(parallel)
        (root / "drop").mkdir(parents=True)
        (root / "drop" / "item_locations_1.csv").write_bytes(
            ("\n".join([COLUMNS, *ROWS]) + "\n").encode() + b"I99,P1,\xff\xfe,ALEE\n")
        files = FilesConnector("erp", FilesConfig(folder="drop"), base_dir=root)
        files.page_size = 4
        with open_store(f"sqlite:///{root}/s.db") as store, pytest.raises(ConnectorError) as caught:
            run_inbound(store, FLOW, files, FieldMap("item-locations", MAPPING), mode="full",
                        source="item_locations_*.csv", parallel=parallel)
        errors.append((type(caught.value), str(caught.value)))
    assert errors[0] == errors[1]
    assert "item_locations_1.csv" in errors[0][1]


EXAMPLE = Path(__file__).parents[2] / "examples" / "walking-skeleton" / "estate.yaml"
CHILD = """
import os, sys
from syncfabric.config import load_estate
from syncfabric.flows.runtime import Runtime

with Runtime(load_estate(sys.argv[1], environ={})) as runtime:
    result = runtime.run_flow("item-locations-in", progress=lambda n: print("page", n, flush=True))
print("done", result.records_in, flush=True)
"""


def parallel_estate(root: Path, exports: list[Path]) -> Path:
    drop_folder = root / "drop" / "erp-legacy"
    drop_folder.mkdir(parents=True)
    for export in exports:
        shutil.copy2(export, drop_folder / export.name)
    text = EXAMPLE.read_text()
    flow = '    source: "item_locations_*.csv"\n    mapping: legacy-item-locations'
    assert flow in text
    (root / "estate.yaml").write_text(text.replace(flow, flow + "\n    batch_size: 500\n    parallel: true"))
    return root / "estate.yaml"


def workers_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.skipif(not Path("/proc/self/stat").exists() or not hasattr(signal, "SIGKILL"),
                    reason="needs POSIX signals and /proc")
def test_killed_parallel_runs_resume_to_the_state_of_a_clean_run_and_leave_no_worker(tmp_path: Path) -> None:
    erp = LegacyErp(tmp_path / "erp", seed=5, item_count=6_000)
    [first] = erp.export(("item_locations",))
    for row in list(erp.rows["item_locations"].values())[::50]:  # the next export: 2% changed
        row["SAFETY_STOCK"] = str(int(row["SAFETY_STOCK"]) + 1)
    erp.clock += dt.timedelta(days=1)
    [second] = erp.export(("item_locations",))
    os.utime(first, (1_700_000_000, 1_700_000_000))  # read first
    rows = len(erp.rows["item_locations"])

    def state(estate: Path) -> tuple[list[Any], list[Any]]:
        with open_store(load_estate(estate, environ={}).store_url) as store:
            return ([(r.key, r.version, r.content_hash) for r in store.current("item_location")],
                    sorted((c.key, c.version, c.content_hash, c.lineage.source_id)
                           for c in store.changes(0, limit=10**6)))

    clean = parallel_estate(tmp_path / "clean", [first, second])
    with Runtime(load_estate(clean, environ={})) as runtime:
        assert runtime.run_flow("item-locations-in").inserted == rows
    expected = state(clean)
    assert sum(version == 2 for _, version, _ in expected[0]) == len(range(0, rows, 50))

    estate = parallel_estate(tmp_path / "crashing", [first, second])
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    rng = random.Random(20261202)
    killed_workers = 0
    for _ in range(4):
        child = subprocess.Popen([sys.executable, str(script), str(estate)], cwd=estate.parent,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout is not None
        for _ in range(rng.randint(1, 40)):  # some pages into the run (of either file)
            if not child.stdout.readline().startswith("page"):
                break
        workers = workers_of(child.pid)
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
        deadline = time.monotonic() + 10
        while not all(gone(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(gone(pid) for pid in workers), "a mapping worker outlived its killed flow"
        killed_workers += len(workers)
    assert killed_workers > 0, "no run was killed while its worker ran"
    done = subprocess.run([sys.executable, str(script), str(estate)], cwd=estate.parent, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert state(estate) == expected
    with open_store(load_estate(estate, environ={}).store_url) as store:
        assert store.quarantine() == []
