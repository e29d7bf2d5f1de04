"""Change-log fan-out, side by side: the embedded reader against the NATS JetStream relay and consumer.

Same store, same changes, same run:

1. N canonical item changes (about 200 bytes of JSON each) are recorded in an embedded SQLite store (WAL);
2. embedded: one worker of a consumer name reads them straight from the change log, in batches, acknowledging each
   batch (a checkpoint commit);
3. NATS: the outbox relay publishes them to a JetStream stream (file storage, ``Nats-Msg-Id`` dedupe), committing its
   checkpoint after each acknowledged batch; then one worker of a durable consumer fetches and acknowledges them;
4. NATS, republish: the relay's checkpoint is reset and the whole log published again: every message is a duplicate
   JetStream drops (what a relay restart after a crash costs).

The NATS server is ``--nats URL`` or, by default, a ``nats-server -js`` started on 127.0.0.1 in a temporary folder.
Results go to benchmarks/results/bus.json and are shown as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from syncfabric.bus import Bus
from syncfabric.bus.embedded import EmbeddedBus
from syncfabric.bus.nats import NatsBus
from syncfabric.bus.relay import Relay
from syncfabric.store import IncomingRecord, Store, open_store


def record(n: int) -> IncomingRecord:
    payload = (f'{{"item_id":"ITEM-{n:07d}","description":"Hydraulic valve assembly {n}","base_unit":"EA",'
               f'"item_type":"finished","planner":"ALEE","lead_time_days":{n % 60},"safety_stock":{n % 900},'
               f'"status":"active"}}')
    return IncomingRecord(f"ITEM-{n:07d}", payload.encode())


def fill(store: Store, changes: int) -> None:
    for start in range(0, changes, 5000):
        with store.transaction() as tx:
            tx.apply("item", [record(n) for n in range(start, min(start + 5000, changes))])


def consume(bus: Bus, consumer: str, expected: int, batch: int) -> float:
    started = time.perf_counter()
    seen = 0
    with bus.subscribe(consumer) as sub:
        while seen < expected:
            got = sub.fetch(max_messages=batch, timeout=2.0)
            if got is None:
                raise RuntimeError(f"{consumer}: only {seen} of {expected} changes arrived")
            seen += len(got)
            got.ack()
    return time.perf_counter() - started


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


@contextmanager
def nats_server(given: str | None) -> Iterator[str]:
    if given:
        yield given
        return
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    root = Path(tempfile.mkdtemp(prefix="syncfabric-bench-nats-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(root)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("nats-server did not start") from None
                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=15)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000, help="changes per relay batch and per consumer fetch")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--nats", help="an existing NATS server with JetStream (default: start nats-server)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bus.json")
    args = parser.parse_args()
    n = args.changes
    console = Console()

    with tempfile.TemporaryDirectory(prefix="syncfabric-bench-bus-") as folder, \
            open_store(f"sqlite:///{folder}/store.db?synchronous=normal") as store, nats_server(args.nats) as url:
        console.print(f"recording {n:,} changes ...")
        record_s = timed(lambda: fill(store, n))

        embedded = EmbeddedBus(store, partitions=1)
        embedded_s = consume(embedded, "bench", n, args.batch)
        embedded_p = EmbeddedBus(store, partitions=args.partitions)
        embedded_p_s = consume(embedded_p, "bench-partitioned", n, args.batch)

        bus = NatsBus(url, store, partitions=args.partitions, stream="BENCH")
        try:
            relay = Relay(store, bus, holder="bench", batch=args.batch)
            relay_s = timed(relay.catch_up)
            assert relay.counts.new == n, relay.counts
            nats_s = consume(bus, "bench", n, args.batch)
            with store.transaction() as tx:
                tx.set_checkpoint(relay.checkpoint_name, "0")
            again = Relay(store, bus, holder="bench", batch=args.batch)
            republish_s = timed(again.catch_up)
            assert again.counts.new == 0, again.counts
            server_version = bus._nc.connected_server_version
        finally:
            bus.call("delete the benchmark stream", bus._js.delete_stream("BENCH"))
            bus.close()

    from importlib.metadata import version

    rate = {
        "record": n / record_s,
        "embedded_consume": n / embedded_s,
        "embedded_consume_partitioned": n / embedded_p_s,
        "nats_relay": n / relay_s,
        "nats_consume": n / nats_s,
        "nats_republish_duplicates": n / republish_s,
        "nats_relay_then_consume": n / (relay_s + nats_s),
    }
    result = {
        "benchmark": "bus",
        "changes": n,
        "batch": args.batch,
        "partitions": args.partitions,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
        "nats": {"server": str(server_version), "client": f"nats-py {version('nats-py')}"},
        "seconds": {"record": record_s, "embedded_consume": embedded_s, "embedded_consume_partitioned": embedded_p_s,
                    "nats_relay": relay_s, "nats_consume": nats_s, "nats_republish_duplicates": republish_s},
        "changes_per_s": rate,
        "ratio_embedded_over_nats": {
            "consume": rate["embedded_consume"] / rate["nats_consume"],
            "end_to_end": rate["embedded_consume"] / rate["nats_relay_then_consume"],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    table = Table("step", "seconds", "changes/s", title=f"Bus fan-out, {n:,} changes, batches of {args.batch:,}")
    labels = {
        "record": "record in the store (SQLite, WAL)",
        "embedded_consume": "embedded: read + ack (1 partition)",
        "embedded_consume_partitioned": f"embedded: read + ack ({args.partitions} partitions, 1 worker)",
        "nats_relay": "NATS: relay publish + checkpoint",
        "nats_consume": f"NATS: fetch + ack ({args.partitions} partitions, 1 worker)",
        "nats_republish_duplicates": "NATS: republish, all duplicates",
    }
    for key, label in labels.items():
        table.add_row(label, f"{result['seconds'][key]:.2f}", f"{rate[key]:,.0f}")
    console.print(table)
    ratios = result["ratio_embedded_over_nats"]
    console.print(f"embedded / NATS: consume {ratios['consume']:.1f}x, relay + consume {ratios['end_to_end']:.1f}x")
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    main()
