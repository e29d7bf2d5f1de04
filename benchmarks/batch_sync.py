"""Batch sync, side by side with dlt: full-refresh ingest and a net-change load of item-location records.

Both tools get the same CSV data generated from a fixed seed, on the same machine, in the same run:

1. full refresh: a CSV export of N item-location records into an empty destination;
2. net change: the next export, with 2% of the records changed, 0.5% deleted and 0.5% new.

syncfabric reads the files from a drop folder through its files connector, maps and validates every row into
canonical ItemLocation records, and writes them to its embedded SQLite store (WAL, synchronous=full) with the change
log and the raw records (keep_raw); in step 2 it detects the changes itself (rows whose input is unchanged are not
mapped again, the rest by content hash) and the deletions from the complete snapshot. The flow runs as an estate
would declare it: pages of 5,000 records (batch_size), parallel (a second process reads and maps while the first
writes); ``--in-process`` maps in the flow's own process instead.
dlt loads the same rows with ``write_disposition="merge"`` and a primary key into its local DuckDB destination;
merge cannot detect deletions from a snapshot, so dlt gets the deleted keys handed to it as rows flagged by a
``hard_delete`` column, which is less work than syncfabric's step 2.

Each load records its wall time and its CPU time (user + system of this process and of any child process it waited
for): the machine is shared, so wall time depends on what else runs, CPU time much less. The full refresh also
records the CPU time of the flow's own process per record (the worker's is the rest). ``--skip-dlt`` loads with
syncfabric only.

Results go to benchmarks/results/batch_sync.json and are shown as a table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from syncfabric.config.schema import Mapping
from syncfabric.connectors.files.configuration import FilesConfig
from syncfabric.connectors.files.connector import FilesConnector
from syncfabric.flows.inbound import run_inbound
from syncfabric.mapping import FieldMap
from syncfabric.store import open_store

COLUMNS = ["ITEM_NO", "SITE", "PROCUREMENT", "LEAD_TIME_DAYS", "SAFETY_STOCK", "PLANNER"]
PLANTS = ["P100", "P200", "P300", "P400"]
MAPPING = Mapping(system="erp", entity="item_location", fields={
    "item_id": "ITEM_NO", "location_id": "SITE", "make_or_buy": "PROCUREMENT", "lead_time_days": "LEAD_TIME_DAYS",
    "safety_stock": "SAFETY_STOCK", "planner": "PLANNER"})


def generate(records: int, seed: int) -> dict[tuple[str, str], list[str]]:
    rng = random.Random(seed)
    rows = {}
    for index in range(records):
        item, plant = f"ITEM-{index // len(PLANTS):07d}", PLANTS[index % len(PLANTS)]
        rows[(item, plant)] = [item, plant, rng.choice(("make", "buy")), str(rng.randint(1, 60)),
                               str(rng.randint(0, 900)), rng.choice(("ALEE", "BTAN", "CWONG", "DMEYER"))]
    return rows


def next_export(rows: dict, seed: int) -> tuple[dict, list[tuple[str, str]]]:
    rng = random.Random(seed + 1)
    keys = list(rows)
    rng.shuffle(keys)
    n = len(keys)
    changed, deleted = keys[: n * 2 // 100], keys[n * 2 // 100: n * 25 // 1000]
    after = dict(rows)
    for key in changed:
        after[key] = [*after[key][:4], str(int(after[key][4]) + 1), after[key][5]]
    for key in deleted:
        del after[key]
    for index in range(n * 5 // 1000):
        item = f"NEW-{index:07d}"
        after[(item, "P100")] = [item, "P100", "buy", "7", "10", "ALEE"]
    return after, deleted


def write_csv(path: Path, rows: dict) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows.values())


class Timing:
    """Wall and CPU time of one load."""

    def __init__(self) -> None:
        self.wall = self.cpu = self.own_cpu = 0.0

    def __enter__(self) -> Timing:
        self._wall, self._cpu, self._own = time.perf_counter(), _cpu_time(), _cpu_time(children=False)
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self._wall, _cpu_time() - self._cpu
        self.own_cpu = _cpu_time(children=False) - self._own


def _cpu_time(*, children: bool = True) -> float:
    """User + system time of this process and, with ``children``, of the child processes it waited for."""
    usages = [resource.getrusage(resource.RUSAGE_SELF)]
    if children:
        usages.append(resource.getrusage(resource.RUSAGE_CHILDREN))
    return sum(usage.ru_utime + usage.ru_stime for usage in usages)


def run_syncfabric(work: Path, exports: list[dict], *, parallel: bool = True) -> list[Timing]:
    drop = work / "drop"
    drop.mkdir()
    store = open_store(f"sqlite:///{work / 'store.db'}")
    connector = FilesConnector("erp", FilesConfig(folder=str(drop)), base_dir=work)
    connector.page_size = 5000
    field_map = FieldMap("bench", MAPPING)
    timings = []
    for number, rows in enumerate(exports):
        write_csv(drop / f"item_locations_{number}.csv", rows)
        with Timing() as timing:
            result = run_inbound(store, "bench", connector, field_map, mode="full", source="item_locations_*.csv",
                                 parallel=parallel)
        timings.append(timing)
        assert result.quarantined == 0
    assert store.count("item_location") == len(exports[-1])
    store.close()
    return timings


def run_dlt(work: Path, exports: list[dict], deleted: list[tuple[str, str]]) -> list[Timing]:
    import dlt

    pipeline = dlt.pipeline(pipeline_name="bench", destination=dlt.destinations.duckdb(str(work / "dlt.duckdb")),
                            dataset_name="bench", pipelines_dir=str(work / "dlt-pipelines"), progress=None)
    columns = {"deleted": {"hard_delete": True, "data_type": "bool"}}
    timings = []
    for number, rows in enumerate(exports):
        path = work / f"dlt_{number}.csv"
        write_csv(path, rows)

        def read(path: Path = path, number: int = number):
            with path.open(newline="") as handle:
                for record in csv.DictReader(handle):
                    yield {"item_id": record["ITEM_NO"], "location_id": record["SITE"],
                           "make_or_buy": record["PROCUREMENT"], "lead_time_days": int(record["LEAD_TIME_DAYS"]),
                           "safety_stock": int(record["SAFETY_STOCK"]), "planner": record["PLANNER"],
                           "deleted": False}
            if number:
                for item, plant in deleted:
                    yield {"item_id": item, "location_id": plant, "deleted": True}

        resource = dlt.resource(read, name="item_location", write_disposition="merge",
                                primary_key=("item_id", "location_id"), columns=columns)
        with Timing() as timing:
            pipeline.run(resource)
        timings.append(timing)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "batch_sync.json")
    parser.add_argument("--in-process", action="store_true", help="map in the flow's process (no worker process)")
    parser.add_argument("--skip-dlt", action="store_true", help="load with syncfabric only (no dlt comparison)")
    args = parser.parse_args()
    console = Console()

    load_start = os.getloadavg()
    with console.status("generating data"):
        first = generate(args.records, args.seed)
        second, deleted = next_export(first, args.seed)
    work = Path(tempfile.mkdtemp(prefix="syncfabric-bench-"))
    (work / "syncfabric").mkdir()
    (work / "dlt").mkdir()
    try:
        with console.status("syncfabric: full refresh, then net change"):
            ours = run_syncfabric(work / "syncfabric", [first, second], parallel=not args.in_process)
        theirs = None
        if not args.skip_dlt:
            with console.status("dlt: merge, then merge with deletions"):
                theirs = run_dlt(work / "dlt", [first, second], deleted)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def loads(timings: list[Timing]) -> dict[str, float]:
        full, net = timings
        return {"full_refresh_s": full.wall, "full_refresh_records_per_s": args.records / full.wall,
                "full_refresh_cpu_s": full.cpu, "full_refresh_records_per_cpu_s": args.records / full.cpu,
                "full_refresh_flow_cpu_us_per_record": full.own_cpu / args.records * 1e6,
                "net_change_s": net.wall, "net_change_cpu_s": net.cpu}

    result = {
        "benchmark": "batch_sync", "records": args.records, "seed": args.seed,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(), "cpus": _cpus(),
                    "load_average": {"start": load_start, "end": os.getloadavg()}},
        "syncfabric_flow": {"batch_size": 5000, "parallel": not args.in_process, "keep_raw": True,
                            "store": "sqlite, WAL, synchronous=full"},
        "syncfabric": loads(ours),
    }
    if theirs is not None:
        import dlt

        result["peer"] = f"dlt {dlt.__version__} (duckdb destination, write_disposition=merge)"
        result["dlt"] = loads(theirs)
        result["ratio_dlt_over_syncfabric"] = {"full_refresh": theirs[0].wall / ours[0].wall,
                                               "net_change": theirs[1].wall / ours[1].wall,
                                               "full_refresh_cpu": theirs[0].cpu / ours[0].cpu,
                                               "net_change_cpu": theirs[1].cpu / ours[1].cpu}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    table = Table("load", "syncfabric wall (CPU; flow process CPU per record)",
                  *(() if theirs is None else ("dlt (merge) wall (CPU)", "dlt time / syncfabric time (CPU)")),
                  title=f"Batch sync of {args.records:,} item-location records")
    for number, name in enumerate(("full refresh", "net change (2% changed, 0.5% deleted, 0.5% new)")):
        mine = ours[number]
        cells = [f"{mine.wall:.1f} s ({args.records / mine.wall:,.0f} rec/s) ({mine.cpu:.1f} s; "
                 f"{mine.own_cpu / args.records * 1e6:.1f} µs)"]
        if theirs is not None:
            peer = theirs[number]
            cells += [f"{peer.wall:.1f} s ({args.records / peer.wall:,.0f} rec/s) ({peer.cpu:.1f} s)",
                      f"{peer.wall / mine.wall:.2f}× ({peer.cpu / mine.cpu:.2f}×)"]  # noqa: RUF001
        table.add_row(name, *cells)
    console.print(table)
    console.print(f"written to {args.out}")


def _cpus() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
