"""A real crash: the inventory flow of the walking skeleton runs in a child process that is killed with SIGKILL at
random moments, restarted each time, and finally left to finish. The store must then hold exactly what a clean,
uninterrupted run stores: every record once, no effect twice, and the export archived.

Both inbound modes are killed this way (a full refresh, which resumes a snapshot, and a net-change read, which
resumes after its cursor), and so is the command a person runs, ``syncfabric sync``."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from syncfabric.config import load_estate
from syncfabric.flows.runtime import Runtime
from syncfabric.sandbox.legacy_erp import LegacyErp
from syncfabric.sandbox.planning_platform import create_app
from syncfabric.sandbox.server import serve
from syncfabric.store import RunStatus, Store, open_store

EXAMPLE = Path(__file__).parents[2] / "examples" / "walking-skeleton" / "estate.yaml"
PAGE_SIZE = 200
"""Small pages: the runs are killed between and within pages, so what counts is how many pages a run has (40 and
more), not how many records."""
KILLS = 5

CHILD = textwrap.dedent("""
    import sys

    from syncfabric.config import load_estate
    from syncfabric.flows.runtime import Runtime

    loaded = load_estate(sys.argv[1], environ={})
    print("ready", flush=True)
    with Runtime(loaded) as runtime:
        result = runtime.run_flow("inventory-in", progress=lambda n: print("page", n, flush=True))
    print("done", result.records_in, flush=True)
""")


def make_estate(root: Path, export: Path, mode: str = "full") -> Path:
    """An estate folder of its own (store and drop folder) holding a copy of ``export``; the inventory flow in
    ``mode``."""
    drop = root / "drop" / "erp-legacy"
    drop.mkdir(parents=True)
    shutil.copy2(export, drop / export.name)
    text = EXAMPLE.read_text()
    flow = '    mode: full\n    source: "inventory_*.csv"'
    assert flow in text
    (root / "estate.yaml").write_text(text.replace(flow, flow.replace("full", mode) + f"\n    batch_size: {PAGE_SIZE}"))
    return root / "estate.yaml"


def stored(store: Store) -> tuple[list[Any], list[Any]]:
    state = [(row.key, row.version, row.content_hash, row.deleted)
             for row in store.current("inventory_balance", include_deleted=True)]
    log = sorted((c.entity, c.key, c.version, c.op, c.content_hash, c.lineage.source_id)
                 for c in store.changes(0, limit=1_000_000))
    return state, log


def start(script: Path, estate: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, str(script), str(estate)], cwd=estate.parent,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != "ready":
        child.kill()
        _, err = child.communicate()
        pytest.fail(f"child did not start: {line!r} {err}")
    return child


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
# A killed net-change read runs with the slow tests; by default the killed full refresh (the harder resume: a
# snapshot) and, in process, tests/flows/test_inbound.py and test_net_change_watermark.py cover resuming a read.
@pytest.mark.parametrize("mode", ["full", pytest.param("changes", marks=pytest.mark.slow)])
def test_killed_runs_resume_to_exactly_the_state_of_a_clean_run(tmp_path: Path, mode: str) -> None:
    erp = LegacyErp(tmp_path / "erp", seed=11, item_count=4_000)
    [export] = erp.export(("inventory",))
    rows = len(erp.rows["inventory"])
    assert rows > 39 * PAGE_SIZE  # 40 pages and more: room for five lives of up to seven pages each, and the last

    clean_estate = make_estate(tmp_path / "clean", export, mode)
    began = time.perf_counter()
    with Runtime(load_estate(clean_estate, environ={})) as runtime:
        assert runtime.run_flow("inventory-in").inserted == rows
        clean = stored(runtime.store)
    clean_duration = time.perf_counter() - began

    estate = make_estate(tmp_path / "crashing", export, mode)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    pages = -(-rows // PAGE_SIZE)
    page_time = clean_duration / pages
    rng = random.Random(20261102 if mode == "full" else 20261103)
    lives: list[tuple[int, int]] = []  # per run of the child: exit code, pages it reported committed
    for _ in range(KILLS):
        # A random moment: some pages into the run, then somewhere within the next page (mapping, writing,
        # committing, archiving).
        child = start(script, estate)
        assert child.stdout is not None
        seen, target = 0, rng.randint(1, 6)
        while seen < target and child.stdout.readline().startswith("page"):
            seen += 1
        time.sleep(rng.uniform(0.0, 1.5) * page_time)
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=60)
        lives.append((child.returncode, seen + out.count("page")))
    if mode == "full":  # the killed snapshot is where the next run resumes, as `syncfabric status` shows it
        out, err = cli(estate, "status", env={**os.environ, "COLUMNS": "250"}).communicate(timeout=60)
        assert f"{export.name}:" in out and "(snapshot," in out, out + err
    child = start(script, estate)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert out.splitlines()[-1].startswith("done ")
    lives.append((0, out.count("page")))

    assert all(code == -signal.SIGKILL for code, _ in lives[:-1]), f"a run ended before it was killed: {lives}"
    assert 0 < lives[-1][1] < pages, f"the last run did not resume: {lives}"
    assert sum(committed for _, committed in lives) <= pages, f"a page was committed twice: {lives}"
    with open_store(loaded_url(estate)) as store:
        state, log = stored(store)
        assert state == clean[0]
        assert all(version == 1 and not deleted for _key, version, _hash, deleted in state)
        assert len(state) == rows
        assert len(log) == rows and len({entry[1] for entry in log}) == rows  # one change per key
        assert log == clean[1]
        assert store.quarantine() == []
        assert store.runs("inventory-in", limit=1)[0].status is RunStatus.SUCCEEDED
    drop = estate.parent / "drop" / "erp-legacy"
    assert list(drop.glob("*.csv")) == []
    assert [path.name for path in (drop / "archive").glob("*.csv")] == [export.name]


def loaded_url(estate: Path) -> str:
    return load_estate(estate, environ={}).store_url


def cli(estate: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "syncfabric.cli", *args, "--estate", str(estate)], env=env,
                            cwd=estate.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
@pytest.mark.slow  # a dozen commands in processes of their own; by default the runs killed above cover resuming
def test_killing_the_sync_command_mid_run_and_starting_it_again_ends_like_a_clean_run(tmp_path: Path) -> None:
    erp = LegacyErp(tmp_path / "erp", seed=12, item_count=3_200)
    *masters, export = erp.export(("locations", "items", "item_locations", "inventory"))
    rows = len(erp.rows["inventory"])
    assert rows > 30 * PAGE_SIZE

    def with_masters(root: Path) -> Path:
        """An estate whose master data is loaded, so that the platform takes the stock sent later."""
        estate = make_estate(root, export)
        for path in masters:
            shutil.copy2(path, root / "drop" / "erp-legacy" / path.name)
        loaded = cli(estate, "sync", "locations-in", "items-in", "item-locations-in")
        assert loaded.wait(timeout=120) == 0
        return estate

    clean_estate = with_masters(tmp_path / "clean")
    began = time.perf_counter()
    done = cli(clean_estate, "sync", "inventory-in")
    out, err = done.communicate(timeout=120)
    duration = time.perf_counter() - began
    assert done.returncode == 0, err
    assert "inventory-in" in out
    with open_store(loaded_url(clean_estate)) as store:
        clean = stored(store)
    assert len(clean[0]) == rows

    estate = with_masters(tmp_path / "crashing")
    rng = random.Random(7)
    partial = []
    database = estate.parent / ".syncfabric" / "syncfabric.db"
    page_time = duration / -(-rows // PAGE_SIZE)
    for _ in range(3):
        before = checkpoint_of(database)
        child = cli(estate, "sync", "inventory-in")
        deadline = time.monotonic() + 60
        while checkpoint_of(database) == before and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # until this run committed a page of its own
        time.sleep(rng.uniform(0.0, 3.0) * page_time)  # then somewhere in the next pages
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
        assert child.returncode == -signal.SIGKILL, "the command ended before it was killed"
        with open_store(loaded_url(estate)) as store:
            partial.append(store.count("inventory_balance"))
        if 0 < partial[-1] < rows and sum(0 < n < rows for n in partial) == 1:  # status says where it resumes
            out, _ = cli(estate, "status", env={**os.environ, "COLUMNS": "250"}).communicate(timeout=60)
            assert f"{export.name}:" in out and "(snapshot," in out
    child = cli(estate, "sync", "inventory-in")
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err

    assert any(0 < count < rows for count in partial), f"no kill landed mid-run: {partial} of {rows}"
    with open_store(loaded_url(estate)) as store:
        assert stored(store) == clean
        assert store.runs("inventory-in", limit=1)[0].status is RunStatus.SUCCEEDED
    drop = estate.parent / "drop" / "erp-legacy"
    assert list(drop.glob("*.csv")) == []

    with serve(create_app(token="t0ken")) as url:  # then on to the planning platform, and reconcile all three
        env = {**os.environ, "PLANNING_TOKEN": "t0ken", "SYNCFABRIC__SYSTEMS__PLANNING__CONNECTION__BASE_URL": url}
        out, err = cli(estate, "sync", "planning-out", env=env).communicate(timeout=120)
        assert "planning-out" in out, err
        check = cli(estate, "reconcile", "inventory", env=env)
        out, err = check.communicate(timeout=120)
        assert check.returncode == 0, out + err
        assert "source, store and target match" in out


def checkpoint_of(database: Path) -> str | None:
    """The inventory flow's checkpoint as another process sees it (None before the store exists)."""
    try:
        with closing(sqlite3.connect(database, timeout=5)) as db:
            row = db.execute("SELECT value FROM sf_checkpoint WHERE name = 'inventory-in'").fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None
