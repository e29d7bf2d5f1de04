"""Mapping and validation throughput on one core, next to a minimal baseline in the same run.

N raw inventory rows (CSV-like: every value text) generated from a fixed seed go through the inbound path's
mapping and data-quality step (:func:`syncfabric.flows.inbound.map_and_check`, in pages of 1,000 like an inbound
flow) in two estates:

- ``plain``: column renames into ``InventoryBalance``, one range rule (``on_hand`` ≥ 0);
- ``rich``: item ids derived through the cross-reference rules (``MAT-100-200`` → ``100200``), plants through a code
  map, quantities converted from boxes and dozens to each with rounding, ISO time stamps parsed, a default, and the
  same range rule.

1% of the rows carry a negative quantity and are rejected with their reason. The baseline is what decoding alone
costs: ``msgspec.convert`` of the same records, already in canonical shape, into the ``InventoryBalance`` Struct
(with its own checks), without our mapping layer. Generating rows is not timed. One process, one thread; times are
the process's CPU time (``time.process_time``), so that other jobs on a shared machine count less. No store is
involved (inbound checks cross-reference links and references to master data against the store; here mapping and
the rules that need no store are measured).

Results go to benchmarks/results/mapping-<N>.json and are shown as a table.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from syncfabric.config.schema import CodeMap, Conversion, Mapping, Rule, Units, UnitSpec
from syncfabric.flows.inbound import map_and_check
from syncfabric.mapping import FieldMap
from syncfabric.mapping.rules import RuleSet
from syncfabric.model.transactions import InventoryBalance

PAGE = 1000
PLANTS = {"1000": "DE-HAM", "2000": "US-CHI", "3000": "SG-SIN", "4000": "CN-SUZ"}
UNITS = ("EA", "BOX", "DZ")
RULES = [Rule(kind="range", field="on_hand", min=0)]

PLAIN = Mapping(system="erp", entity="inventory_balance", fields={
    "item_id": "ITEM_NO", "location_id": "SITE", "lot": "LOT", "on_hand": {"value": "ON_HAND", "unit": "UOM"},
    "allocated": {"value": "ALLOCATED", "unit": "UOM"}, "as_of": "SNAPSHOT_UTC"})
RICH = Mapping(system="erp", entity="inventory_balance", fields={
    "item_id": {"from": "ITEM_NO", "xref": {"entity": "item", "derive": {"strip_prefix": "MAT-", "remove": "-"}}},
    "location_id": {"from": "SITE", "code_map": "plants"},
    "lot": {"from": "LOT", "default": ""},
    "on_hand": {"value": "ON_HAND", "unit": "UOM", "convert_to": "EA"},
    "allocated": {"value": "ALLOCATED", "unit": "UOM", "convert_to": "EA"},
    "as_of": {"from": "SNAPSHOT_UTC", "datetime": {}}})
RICH_UNITS = Units(units={"EA": UnitSpec(decimals=0)}, conversions=[
    Conversion(from_="BOX", to="EA", factor=12), Conversion(from_="DZ", to="EA", factor=12)])
CODE_MAPS = {"plants": CodeMap(values=dict(PLANTS))}


def pages(records: int, seed: int) -> Iterator[list[dict[str, str]]]:
    """Raw rows as a CSV reader gives them, a page at a time."""
    rng = random.Random(seed)
    plants = list(PLANTS)
    page: list[dict[str, str]] = []
    for index in range(records):
        number = index // len(plants)
        on_hand = rng.randint(0, 5000) if rng.random() >= 0.01 else -rng.randint(1, 50)
        page.append({
            "ITEM_NO": f"MAT-{number // 1000:03d}-{number % 1000:03d}", "SITE": plants[index % len(plants)],
            "LOT": "", "ON_HAND": str(on_hand), "UOM": rng.choice(UNITS), "ALLOCATED": str(rng.randint(0, 100)),
            "SNAPSHOT_UTC": f"2026-11-02T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
        })
        if len(page) == PAGE:
            yield page
            page = []
    if page:
        yield page


def canonical(row: dict[str, str]) -> dict[str, Any]:
    """The same record already in canonical shape: what the baseline decodes."""
    return {"item_id": row["ITEM_NO"], "location_id": row["SITE"], "lot": row["LOT"],
            "on_hand": {"value": row["ON_HAND"], "unit": row["UOM"]},
            "allocated": {"value": row["ALLOCATED"], "unit": row["UOM"]}, "as_of": row["SNAPSHOT_UTC"]}


def run_mapping(field_map: FieldMap, records: int, seed: int, progress: Progress, label: str) -> dict[str, Any]:
    rules = RuleSet("inventory_balance", RULES)
    task = progress.add_task(label, total=records)
    elapsed, accepted, rejected = 0.0, 0, 0
    for page in pages(records, seed):
        started = time.process_time()
        outcomes = map_and_check(page, field_map, rules, None)
        elapsed += time.process_time() - started
        accepted += sum(1 for outcome in outcomes if outcome.record is not None)
        rejected += sum(1 for outcome in outcomes if outcome.record is None)
        progress.advance(task, len(page))
    return {"seconds": elapsed, "records_per_s": records / elapsed, "accepted": accepted, "rejected": rejected}


def run_baseline(records: int, seed: int, progress: Progress) -> dict[str, Any]:
    task = progress.add_task("baseline: msgspec.convert", total=records)
    elapsed, accepted, rejected = 0.0, 0, 0
    for page in pages(records, seed):
        shaped = [canonical(row) for row in page]
        started = time.process_time()
        for data in shaped:
            try:
                msgspec.convert(data, InventoryBalance, strict=False)
                accepted += 1
            except msgspec.ValidationError:
                rejected += 1
        elapsed += time.process_time() - started
        progress.advance(task, len(page))
    return {"seconds": elapsed, "records_per_s": records / elapsed, "accepted": accepted, "rejected": rejected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(__file__).parent / "results" / f"mapping-{_short(args.records)}.json"
    console = Console()

    plain = FieldMap("plain", PLAIN)
    rich = FieldMap("rich", RICH, units=RICH_UNITS, code_maps=CODE_MAPS)
    gc.collect()
    with Progress(console=console, transient=True) as progress:
        baseline = run_baseline(args.records, args.seed, progress)
        ours = {"plain": run_mapping(plain, args.records, args.seed, progress, "syncfabric: plain mapping"),
                "rich": run_mapping(rich, args.records, args.seed, progress, "syncfabric: rich mapping")}

    result = {
        "benchmark": "mapping", "records": args.records, "seed": args.seed, "page": PAGE,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(), "cpus": _cpus(), "cores_used": 1},
        "baseline": {"what": f"msgspec {msgspec.__version__} convert of canonical-shaped dicts into "
                             "InventoryBalance", **baseline},
        "syncfabric": ours,
        "ratio_syncfabric_time_over_baseline": {name: run["seconds"] / baseline["seconds"]
                                                for name, run in ours.items()},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    table = Table("run", "CPU time", "records/s", "accepted", "rejected", "time / baseline",
                  title=f"Mapping + validation of {args.records:,} inventory rows on one core")
    rows = [("baseline: msgspec.convert (no mapping)", baseline)]
    rows += [(f"syncfabric: {name} mapping + rules", run) for name, run in ours.items()]
    for label, run in rows:
        table.add_row(label, f"{run['seconds']:.2f} s", f"{run['records_per_s']:,.0f}", f"{run['accepted']:,}",
                      f"{run['rejected']:,}", f"{run['seconds'] / baseline['seconds']:.2f} x")
    console.print(table)
    console.print(f"written to {out}")


def _short(records: int) -> str:
    return f"{records // 1_000_000}m" if records % 1_000_000 == 0 else f"{records // 1000}k"


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
