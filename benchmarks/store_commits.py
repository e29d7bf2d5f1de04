"""How long a commit of an event batch takes in the embedded store, and how large its write-ahead log grows.

Each run commits ``--commits`` batches of ``--records`` shipment milestones (records, change log and a checkpoint in
one transaction; SQLite WAL, ``synchronous=full``), either with ``--gap`` seconds between commits (a steady event
load) or back to back (one that never pauses), on a fresh store each time:

- **syncfabric**: the store as it is, its log checkpointed by a thread of its own (``syncfabric.store.wal``);
- **sqlite-checkpoints**: the same store with SQLite's own checkpoints instead (inside the commit that makes the log
  pass 1,000 pages, the default), to see what the thread changes;
- **baseline**: the standard library's ``sqlite3`` appending the same batches as rows of one table (WAL,
  ``synchronous=FULL``, SQLite's checkpoints): the floor of a durable commit on this disk.

    benchmarks/run store_commits.py --commits 1500 --records 100
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from harness import machine

PIPELINES = ("syncfabric", "sqlite-checkpoints", "baseline")


def batches(commits: int, records: int) -> list[list[tuple[str, bytes]]]:
    out = []
    for commit in range(commits):
        rows = []
        for n in range(records):
            shipment = f"SH-{commit * records + n:08d}"
            rows.append((f"{shipment}|departed", json.dumps({
                "shipment_id": shipment, "milestone": "departed", "place": "DEHAM", "carrier": "OceanLine",
                "occurred_at": "2026-12-03T08:00:00+00:00", "detail": f"vessel {n}"}).encode()))
        out.append(rows)
    return out


def store_commit(folder: Path, *, own_checkpoints: bool) -> tuple[Callable[[int, list[tuple[str, bytes]]], None],
                                                                    Callable[[], None]]:
    import syncfabric.store.sqlite as embedded
    from syncfabric.store import IncomingRecord, open_store
    from syncfabric.store.wal import WalCheckpointer

    if own_checkpoints:  # the thread never started; SQLite's default automatic checkpoint
        embedded.FALLBACK_PAGES = 1000
        WalCheckpointer.committed = lambda self: None  # type: ignore[method-assign]
    store = open_store(f"sqlite:///{folder}/store.db")

    def commit(number: int, rows: list[tuple[str, bytes]]) -> None:
        with store.transaction() as tx:
            tx.apply("shipment_milestone", [IncomingRecord(key, payload) for key, payload in rows])
            tx.set_checkpoint("bench", str(number))

    return commit, store.close


def baseline_commit(folder: Path) -> tuple[Callable[[int, list[tuple[str, bytes]]], None], Callable[[], None]]:
    db = sqlite3.connect(folder / "store.db", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE event (seq INTEGER PRIMARY KEY, key TEXT NOT NULL, payload BLOB NOT NULL)")
    db.execute("CREATE TABLE mark (name TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def commit(number: int, rows: list[tuple[str, bytes]]) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO event (key, payload) VALUES (?, ?)", rows)
        db.execute("INSERT OR REPLACE INTO mark VALUES ('bench', ?)", (str(number),))
        db.execute("COMMIT")

    return commit, db.close


def run(pipeline: str, work: list[list[tuple[str, bytes]]], gap: float, progress: Progress) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-commits-") as name:
        folder = Path(name)
        if pipeline == "baseline":
            commit, close = baseline_commit(folder)
        else:
            commit, close = store_commit(folder, own_checkpoints=pipeline == "sqlite-checkpoints")
        task = progress.add_task(f"{pipeline}, {'back to back' if not gap else f'{gap * 1000:g} ms apart'}",
                                 total=len(work))
        times: list[float] = []
        largest = 0
        started, cpu = time.perf_counter(), time.process_time()
        for number, rows in enumerate(work):
            at = time.perf_counter()
            commit(number, rows)
            times.append((time.perf_counter() - at) * 1000)
            largest = max(largest, os.path.getsize(folder / "store.db-wal"))
            progress.advance(task)
            if gap:
                time.sleep(gap)
        total = time.perf_counter() - started
        close()  # the checkpoint thread's CPU counted up to its end
        cpu = time.process_time() - cpu
    times.sort()

    def at(share: float) -> float:
        return round(times[min(len(times) - 1, int(share * len(times)))], 2)

    return {"pipeline": pipeline, "gap_s": gap, "commits": len(times), "records_per_commit": len(work[0]),
            "total_s": round(total, 2), "cpu_ms_per_commit": round(cpu / len(times) * 1000, 2),
            "p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99),
            "p99_9_ms": at(0.999), "max_ms": round(times[-1], 2), "largest_log_mb": round(largest / 1e6, 2),
            "load": round(os.getloadavg()[0], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=1500)
    parser.add_argument("--records", type=int, default=100, help="records per commit")
    parser.add_argument("--gaps", default="0.002,0", help="seconds between commits, one run each (0: none)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/store_commits.json"))
    parser.add_argument("--one", choices=PIPELINES, help=argparse.SUPPRESS)  # a run in a child process
    args = parser.parse_args()
    work = batches(args.commits, args.records)
    if args.one:  # its result as the last line: read by run_apart
        with Progress(disable=True) as quiet:
            print(json.dumps(run(args.one, work, float(args.gaps), quiet)))
        return
    console = Console()
    runs: list[dict[str, Any]] = []
    gaps = [float(text) for text in args.gaps.split(",")]
    with Progress(console=console) as progress:
        overall = progress.add_task("runs", total=len(gaps) * len(PIPELINES))
        for gap in gaps:
            # the store's in processes of their own: the variant with SQLite's checkpoints changes its module
            for pipeline in PIPELINES:
                runs.append(run_apart(pipeline, args, gap) if pipeline != "baseline"
                            else run(pipeline, work, gap, progress))
                progress.advance(overall)
    table = Table(title=f"{args.commits:,} commits of {args.records} records")
    for column in ("pipeline", "apart", "total", "CPU per commit", "p50", "p95", "p99", "p99.9", "max", "largest log"):
        table.add_column(column, justify="left" if column == "pipeline" else "right")
    for result in runs:
        table.add_row(result["pipeline"], f"{result['gap_s'] * 1000:g} ms", f"{result['total_s']} s",
                      f"{result['cpu_ms_per_commit']} ms",
                      *(f"{result[k]} ms" for k in ("p50_ms", "p95_ms", "p99_ms", "p99_9_ms", "max_ms")),
                      f"{result['largest_log_mb']} MB")
    console.print(table)
    ratio = Table(title="p99 of a commit against the baseline's")
    ratio.add_column("apart")
    for pipeline in PIPELINES[:2]:
        ratio.add_column(pipeline, justify="right")
    by = {(r["pipeline"], r["gap_s"]): r for r in runs}
    for gap in sorted({r["gap_s"] for r in runs}, reverse=True):
        base = by[("baseline", gap)]["p99_ms"]
        ratio.add_row(f"{gap * 1000:g} ms", *(f"{by[(p, gap)]['p99_ms'] / base:.2f}×" for p in PIPELINES[:2]))  # noqa: RUF001
    console.print(ratio)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "commits": args.commits, "records": args.records,
                                    "runs": runs}, indent=2) + "\n")
    console.print(f"wrote {args.out}")


def run_apart(pipeline: str, args: argparse.Namespace, gap: float) -> dict[str, Any]:
    """One run in a child process (this script with ``--one``), its result read from its last line."""
    import subprocess

    output = subprocess.run(
        [sys.executable, __file__, "--one", pipeline, "--commits", str(args.commits), "--records", str(args.records),
         "--gaps", str(gap)], check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
