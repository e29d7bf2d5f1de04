"""Event ingest from MQTT into the store, side by side with a minimal pipeline doing the same durable work.

Both consumers read the same N machine-downtime events from one mosquitto broker (started here from Debian's
package, as the tests do), each through its own persistent QoS 1 session that was subscribed before the events
were published, so each drains the same backlog:

- syncfabric: ``syncfabric listen``'s machinery on the example plant estate: aiomqtt on its own thread, batches of
  up to 1000 events gathered for at most 20 ms, every event mapped and validated into a canonical MachineDowntime,
  upserted with content hash, version and change-log entry, checkpoint in the same transaction, SQLite WAL with
  ``synchronous=full``, PUBACK after the commit.
- baseline: one asyncio loop with the same client library and batch policy that decodes each message as JSON and
  appends (event id, topic, body) to one SQLite table in WAL mode with ``synchronous=FULL``, one transaction per
  batch, PUBACK after the commit. No mapping, no validation, no change log.

Results go to benchmarks/results/events_ingest.json and are shown as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.events.support import PlantEstate  # noqa: E402
from tests.servers.mosquitto import find_mosquitto, publish, start_broker  # noqa: E402

from syncfabric.config import load_estate  # noqa: E402
from syncfabric.connectors.mqtt.configuration import MqttConfig  # noqa: E402
from syncfabric.connectors.mqtt.connector import MqttConnector  # noqa: E402
from syncfabric.flows.listen import Listener  # noqa: E402
from syncfabric.flows.runtime import Runtime  # noqa: E402
from syncfabric.store import open_store  # noqa: E402

BATCH_SIZE = 1000
MAX_WAIT = 0.02


def run_syncfabric(estate: PlantEstate, total: int) -> float:
    with Runtime(load_estate(estate.path, environ=estate.environ)) as runtime:
        listener = Listener(runtime, ["downtime-in"], max_wait=MAX_WAIT)
        started = time.perf_counter()
        listener.start()
        store = runtime.store
        while store.count("machine_downtime") < total:
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        listener.stop()
        listener.join()
    return elapsed


async def _baseline(host: str, port: int, client_id: str, topic: str, db: Path, total: int) -> float:
    import aiomqtt
    import msgspec

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, topic TEXT, body BLOB)")
    client = aiomqtt.Client(host, port, identifier=client_id, clean_session=False)
    client._client.manual_ack_set(True)
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    stored = 0
    async with client:
        await client.subscribe(topic, qos=1)
        received: asyncio.Queue = asyncio.Queue()

        async def receive() -> None:  # aiomqtt's iterator may drop a message when a wait on it is cancelled
            async for message in client.messages:
                received.put_nowait(message)

        receiver = asyncio.create_task(receive())
        while stored < total:
            batch = [await received.get()]
            deadline = loop.time() + MAX_WAIT
            while len(batch) < BATCH_SIZE:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(received.get(), remaining))
                except TimeoutError:
                    break
            rows = []
            for message in batch:
                body = message.payload
                event = msgspec.json.decode(body)
                rows.append((event["event_id"], str(message.topic), body))
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?)", rows)
            conn.execute("COMMIT")
            for message in batch:
                client._client.ack(message.mid, message.qos)
            stored += len(batch)
        receiver.cancel()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def subscribe_once(config: MqttConfig, topic: str, durable: str) -> None:
    """Create the persistent session (and its subscription) that will hold the backlog."""
    MqttConnector("bench", config).subscribe(topic, durable=durable).close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "events_ingest.json")
    args = parser.parse_args()
    console = Console()
    binary = find_mosquitto()
    if binary is None:
        raise SystemExit("mosquitto not found: install Debian's mosquitto package")
    work = Path(tempfile.mkdtemp(prefix="syncfabric-bench-events-"))
    process, broker = start_broker(binary, work)
    try:
        estate = PlantEstate(work, broker)
        topic = estate.downtime_topic("+")
        config = MqttConfig(host=broker.host, port=broker.port, client_id=estate.tag)
        subscribe_once(config, topic, "downtime-in")  # syncfabric's session: <tag>-downtime-in
        subscribe_once(config, topic, "baseline")
        messages = [message for site in ("P100", "P200", "P300", "P400")
                    for message in estate.downtime_messages(range(int(site[1]) * 10**6,
                                                                  int(site[1]) * 10**6 + args.events // 4), site)]
        with console.status(f"publishing {len(messages):,} events (QoS 1)"):
            publish(broker, messages, timeout=600)
        total = len(messages)
        with console.status("syncfabric: MQTT → map → validate → store"):
            syncfabric_s = run_syncfabric(estate, total)
        with console.status("baseline: MQTT → decode → append to SQLite"):
            baseline_s = asyncio.run(_baseline(broker.host, broker.port, f"{estate.tag}-baseline", topic,
                                               work / "baseline.db", total))
        with open_store(estate.store_url) as store:
            assert store.count("machine_downtime") == total
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "benchmark": "events_ingest",
        "events": total,
        "batch_size": BATCH_SIZE,
        "max_wait_seconds": MAX_WAIT,
        "durability": "SQLite WAL, synchronous=full, one transaction per batch, PUBACK after commit",
        "syncfabric": {"seconds": round(syncfabric_s, 3), "events_per_second": round(total / syncfabric_s)},
        "baseline": {"seconds": round(baseline_s, 3), "events_per_second": round(total / baseline_s)},
        "syncfabric_time_over_baseline_time": round(syncfabric_s / baseline_s, 2),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(), "cpus": _cpus()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    table = Table("pipeline", "events", "seconds", "events/s", title="MQTT event ingest (backlog drain)")
    table.add_row("syncfabric listen", f"{total:,}", f"{syncfabric_s:.2f}", f"{total / syncfabric_s:,.0f}")
    table.add_row("baseline (decode + append)", f"{total:,}", f"{baseline_s:.2f}", f"{total / baseline_s:,.0f}")
    console.print(table)
    console.print(f"syncfabric time / baseline time: {syncfabric_s / baseline_s:.2f}x; written to {args.out}")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    main()
