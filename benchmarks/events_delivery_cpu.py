"""CPU per change of the delivery half of the event path, in one thread: the changes the listener committed (shipment
milestones, the shape of ``events_pipeline.py``) → :meth:`StreamConsumer.step <syncfabric.flows.stream.StreamConsumer
.step>` (the bus fetch, from the store's memory of its own commits; folding, the held-key check, the retry wrapper,
the write to the pipeline's local HTTP target over one keep-alive connection, per-record outcomes, the delivery log,
the commit with the checkpoints) until caught up.

The changes are committed in the same thread, ``--per-commit`` at a time (not counted), each commit followed by the
steps that deliver it (counted: the thread's CPU time), as a consumer woken by each commit of the listener delivers
them. 500 per commit is about what a commit holds at 10,000 events/s offered, 20 what it holds at 2,000/s. Given
several (``--per-commit 500,100``), each repetition runs each of them in turn, and the CPU per change is fitted as
a fixed cost per delivered commit plus a cost per change (least squares over ``1 / per commit``; exact for two): what
the delivery of one commit costs whatever it holds, and what each change in it adds. The target
(uvicorn, its own process) is not counted. ``--without log`` or ``--without http`` leaves the delivery log or the HTTP
request out, to see what each costs (a measurement aid, not a configuration of the product). ``--profile FILE``
writes a cProfile of the counted part. Results go to benchmarks/results/events_delivery_cpu.json and are shown as
a table.

To compare code versions, run it with ``PYTHONPATH`` set to another checkout's ``src`` (and alternate).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

sys.path.insert(0, str(Path(__file__).parent))
from events_pipeline import key_of, start_target, target_connector
from harness import machine
from rich.console import Console
from rich.table import Table


def payload(n: int) -> bytes:
    """The canonical record the listener stores for event ``n`` of ``events_pipeline.py``."""
    return msgspec.json.encode({"shipment_id": f"SH-{n:08d}", "milestone": "departed",
                                "occurred_at": "2026-03-02T08:00:00+00:00", "place": "DEHAM",
                                "carrier": "OceanLine", "detail": f"vessel {n % 97}"})


def run(url: str, *, changes: int, batch: int, per_commit: int, without: set[str], profile: str | None) -> float:
    """Microseconds of CPU per change delivered."""
    from syncfabric.connectors.base import WriteOutcome
    from syncfabric.flows import outbound
    from syncfabric.flows.heap import settle_after_start_up
    from syncfabric.flows.retry import RetryPolicy
    from syncfabric.flows.stream import StreamConsumer
    from syncfabric.store import IncomingRecord, Lineage, open_store

    httpx.post(f"{url}/reset").raise_for_status()
    if "log" in without:
        outbound.delivery_log.deliveries = lambda *_args, **_options: []  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as folder, \
            open_store(f"sqlite:///{folder}/store.db") as store:
        connector = target_connector(url)
        connector.open()
        if "http" in without:
            connector.write = lambda _entity, records: WriteOutcome(accepted=[r.key for r in records])
        consumer = StreamConsumer(store, "milestones-out", connector, entities=["shipment_milestone"],
                                  batch_size=batch, retry=RetryPolicy(max_attempts=3))
        consumer._subscription()  # joined the bus: what is counted is the delivery
        settle_after_start_up()
        profiler: Any = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
        cpu = 0.0
        for start in range(0, changes, per_commit):
            with store.transaction() as tx:
                tx.apply("shipment_milestone", [IncomingRecord(key_of(n), payload(n), Lineage("logistics"))
                                                for n in range(start, min(changes, start + per_commit))])
            began = time.thread_time()
            if profiler is not None:
                profiler.enable()
            while consumer.step():
                pass
            if profiler is not None:
                profiler.disable()
            cpu += time.thread_time() - began
        consumer.close()
        connector.close()
        if profiler is not None:
            profiler.dump_stats(profile)
    held = httpx.get(f"{url}/counts").json()["keys"]
    if "http" not in without and held != changes:
        raise AssertionError(f"the target holds {held} keys, {changes} were delivered")
    return cpu / changes * 1e6


def fit(per_change: dict[int, float]) -> tuple[float, float]:
    """(fixed µs per commit, µs per change) from the CPU per change at several commit sizes: the least-squares line
    through (1 / per commit, µs per change)."""
    xs = [1 / n for n in per_change]
    ys = list(per_change.values())
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    fixed = (sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
             / sum((x - mean_x) ** 2 for x in xs))
    return fixed, mean_y - fixed * mean_x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2000, help="the consumer's batch size (the pipeline's estate)")
    parser.add_argument("--per-commit", default="500", help="changes per commit; comma-separated for a fit")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--without", default="", help="comma-separated: log, http")
    parser.add_argument("--profile")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "events_delivery_cpu.json")
    args = parser.parse_args()
    import syncfabric

    per_commit = [int(n) for n in args.per_commit.split(",")]
    without = set(filter(None, args.without.split(",")))
    runs: dict[int, list[float]] = {n: [] for n in per_commit}
    process, url = start_target()
    try:
        for _ in range(args.repeat):
            for n in per_commit:
                runs[n].append(round(run(url, changes=args.changes, batch=args.batch, per_commit=n, without=without,
                                         profile=args.profile), 2))
    finally:
        process.terminate()
        process.wait(timeout=10)
    fits = [fit({n: runs[n][i] for n in per_commit}) for i in range(args.repeat)] if len(per_commit) > 1 else []
    result: dict[str, Any] = {
        "code": str(Path(syncfabric.__file__).parent), "changes": args.changes, "batch": args.batch,
        "without": args.without, "per_commit": per_commit,
        "cpu_us_per_change": {str(n): runs[n] for n in per_commit}, "machine": machine()}
    if fits:
        result["fit"] = {"fixed_us_per_commit": [round(fixed, 1) for fixed, _ in fits],
                         "us_per_change": [round(each, 2) for _, each in fits]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    table = Table("changes", "per commit", "left out", "CPU per change, each run",
                  title="Delivery of the event path's changes, one thread")
    for n in per_commit:
        table.add_row(f"{args.changes:,}", str(n), args.without or "nothing",
                      ", ".join(f"{value:.1f} µs" for value in runs[n]))
    if fits:
        table.add_row("fit", "fixed per commit", "", ", ".join(f"{fixed:,.0f} µs" for fixed, _ in fits))
        table.add_row("fit", "per change", "", ", ".join(f"{each:.2f} µs" for _, each in fits))
    console = Console()
    console.print(table)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
