"""Event ingest from MQTT into the store, side by side with a minimal pipeline doing the same durable work.

Both consumers read the same N machine-downtime events from one mosquitto broker (started here from Debian's
package, as the tests do), each through its own persistent QoS 1 session that was subscribed before the events
were published, so each drains the same backlog:

- syncfabric: ``syncfabric listen``'s machinery on the example plant estate: aiomqtt on its own thread, batches of
  up to 1000 events gathered for at most 20 ms, every event mapped and validated into a canonical MachineDowntime,
  upserted with content hash, version and change-log entry, checkpoint in the same transaction, SQLite WAL with
  ``synchronous=full``, PUBACK after the commit.
- syncfabric --workers N (``--workers 1,2``): ``syncfabric listen --workers N``'s machinery: N worker processes, each
  a member (its own persistent MQTT 3.1.1 session) of one shared subscription ``$share/<group>/<filter>`` subscribed
  before the events were published, each mapping, validating and committing its own batches into the same SQLite
  store (the store serializes their write transactions), PUBACK after its commit.
- baseline: one asyncio loop with the same client library, socket reading (64 KiB reads) and batch policy that
  decodes each message as JSON and appends (event id, topic, body) to one SQLite table in WAL mode with
  ``synchronous=FULL``, one transaction per batch, PUBACK after the commit. No mapping, no validation, no change
  log.

Each pipeline has a store of its own. Two times are measured for each: from its start (for the workers: process
start-up included) to the last event stored, and the drain from the first event stored to the last, which is the
rate a running hub sustains. CPU seconds are those of the consumer's processes (this one, or the workers').
Results go to benchmarks/results/events_ingest.json and are shown as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
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
from syncfabric.connectors.mqtt.read_ahead import read_ahead  # noqa: E402
from syncfabric.flows.listen import Listener  # noqa: E402
from syncfabric.flows.listen_workers import Layout, ListenWorkers, write_layout  # noqa: E402
from syncfabric.flows.runtime import Runtime  # noqa: E402
from syncfabric.store import open_store  # noqa: E402

BATCH_SIZE = 1000
MAX_WAIT = 0.02


class Timing:
    """Wall time from the start and from the first event stored, and CPU seconds, of one pipeline."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first: float | None = None
        self.done = 0.0
        self.cpu = 0.0

    def watch(self, count, total: int) -> None:
        while (stored := count()) < total:
            if stored and self.first is None:
                self.first = time.perf_counter()
            time.sleep(0.005)
        self.done = time.perf_counter()

    def row(self, total: int) -> dict[str, float]:
        seconds = self.done - self.started
        drain = self.done - (self.first or self.started)
        return {"seconds": round(seconds, 3), "events_per_second": round(total / seconds),
                "drain_seconds": round(drain, 3), "drain_events_per_second": round(total / drain),
                "cpu_seconds": round(self.cpu, 3), "cpu_us_per_event": round(self.cpu / total * 1e6, 1)}


def stored(listener: Listener | ListenWorkers) -> int:
    """Events committed so far, as the listener counts them (no store query: this process's CPU stays its own)."""
    result = listener.results.get("downtime-in")
    return 0 if result is None else result.inserted


def run_syncfabric(estate: PlantEstate, environ: dict[str, str], total: int) -> Timing:
    with Runtime(load_estate(estate.path, environ=environ)) as runtime:
        listener = Listener(runtime, ["downtime-in"], max_wait=MAX_WAIT)
        cpu = time.process_time()
        timing = Timing()
        listener.start()
        timing.watch(lambda: stored(listener), total)
        timing.cpu = time.process_time() - cpu
        listener.stop()
        listener.join()
    return timing


def run_workers(estate: PlantEstate, environ: dict[str, str], total: int, workers: int) -> Timing:
    pids: list[int] = []

    def event(line: str) -> None:
        found = re.search(r"pid (\d+)$", line)
        if found:
            pids.append(int(found.group(1)))

    with Runtime(load_estate(estate.path, environ=environ)) as runtime:
        store = runtime.store
        write_layout(store, "downtime-in", Layout(workers=workers))  # sessions made beforehand: none to retire
        listener = ListenWorkers(runtime, ["downtime-in"], {"downtime-in": workers}, max_wait=MAX_WAIT,
                                 on_event=event)
        timing = Timing()
        listener.start()
        timing.watch(lambda: stored(listener), total)
        timing.cpu = sum(_process_cpu(pid) for pid in pids)
        listener.stop()
        listener.join()
    return timing


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _baseline(host: str, port: int, client_id: str, topic: str, db: Path, total: int) -> Timing:
    import aiomqtt
    import msgspec

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, topic TEXT, body BLOB)")
    client = aiomqtt.Client(host, port, identifier=client_id, clean_session=False)
    client._client.manual_ack_set(True)
    read_ahead(client._client)  # the same socket reading as the connector
    loop = asyncio.get_running_loop()
    timing = Timing()
    cpu = time.process_time()
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
            if timing.first is None:
                timing.first = time.perf_counter()
        receiver.cancel()
    timing.done = time.perf_counter()
    timing.cpu = time.process_time() - cpu
    conn.close()
    return timing


def subscribe_once(config: MqttConfig, topic: str, durable: str) -> None:
    """Create the persistent session (and its subscription) that will hold the backlog."""
    MqttConnector("bench", config).subscribe(topic, durable=durable).close()


def subscribe_members(config: MqttConfig, topic: str, workers: int) -> None:
    """Create the sessions of the shared subscription's members, as ``listen --workers`` names them."""
    connector = MqttConnector("bench", config)
    group = connector.share_group("downtime-in")
    for index in range(workers):
        connector.subscribe_shared(topic, group=group, durable=f"downtime-in-w{index}").close()


def variant(estate: PlantEstate, work: Path, name: str) -> dict[str, str]:
    """The estate's environment for one pipeline: a store and MQTT client ids of its own."""
    folder = work / name
    folder.mkdir()
    return {**estate.environ, "SYNCFABRIC__STORE": f"sqlite:///{folder}/syncfabric.db",
            "SYNCFABRIC__SYSTEMS__PLANT_MES__CONNECTION__CLIENT_ID": f"{estate.tag}-{name}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2",
                        help="worker counts of listen --workers to run, comma-separated ('' for none)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "events_ingest.json")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    console = Console()
    binary = find_mosquitto()
    if binary is None:
        raise SystemExit("mosquitto not found: install Debian's mosquitto package")
    work = Path(tempfile.mkdtemp(prefix="syncfabric-bench-events-"))
    process, broker = start_broker(binary, work)
    try:
        estate = PlantEstate(work, broker)
        topic = estate.downtime_topic("+")
        plain = variant(estate, work, "listen")
        subscribe_once(MqttConfig(host=broker.host, port=broker.port, client_id=f"{estate.tag}-listen"), topic,
                       "downtime-in")  # syncfabric's session: <client id>-downtime-in
        subscribe_once(MqttConfig(host=broker.host, port=broker.port, client_id=estate.tag), topic, "baseline")
        environs = {}
        for workers in counts:
            environs[workers] = variant(estate, work, f"workers{workers}")
            members = MqttConfig(host=broker.host, port=broker.port, client_id=f"{estate.tag}-workers{workers}")
            subscribe_members(members, topic, workers)
        messages = [message for site in ("P100", "P200", "P300", "P400")
                    for message in estate.downtime_messages(range(int(site[1]) * 10**6,
                                                                  int(site[1]) * 10**6 + args.events // 4), site)]
        with console.status(f"publishing {len(messages):,} events (QoS 1)"):
            for start in range(0, len(messages), 10_000):  # the publisher's client queues a bounded number
                publish(broker, messages[start:start + 10_000], timeout=600)
        total = len(messages)
        load_before = os.getloadavg()
        timings: dict[str, Timing] = {}
        with console.status("baseline: MQTT → decode → append to SQLite"):
            timings["baseline"] = asyncio.run(_baseline(broker.host, broker.port, f"{estate.tag}-baseline", topic,
                                                        work / "baseline.db", total))
        with console.status("syncfabric: MQTT → map → validate → store"):
            timings["syncfabric"] = run_syncfabric(estate, plain, total)
        for workers in counts:
            with console.status(f"syncfabric --workers {workers}"):
                timings[f"workers_{workers}"] = run_workers(estate, environs[workers], total, workers)
        load_after = os.getloadavg()
        for environ in [plain, *environs.values()]:
            with open_store(environ["SYNCFABRIC__STORE"]) as store:
                assert store.count("machine_downtime") == total
                assert len(store.changes(0, entities=["machine_downtime"], limit=2 * total)) == total
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(work, ignore_errors=True)

    baseline = timings["baseline"]
    result = {
        "benchmark": "events_ingest",
        "events": total,
        "batch_size": BATCH_SIZE,
        "max_wait_seconds": MAX_WAIT,
        "durability": "SQLite WAL, synchronous=full, one transaction per batch, PUBACK after commit",
        **{name: timing.row(total) for name, timing in timings.items()},
        "drain_time_over_baseline": {name: round((t.done - (t.first or t.started))
                                                 / (baseline.done - (baseline.first or baseline.started)), 2)
                                     for name, t in timings.items() if name != "baseline"},
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(), "cpus": _cpus()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    table = Table("pipeline", "events", "seconds (from start)", "drain s", "drain events/s", "CPU µs/event",
                  title="MQTT event ingest (backlog drain)")
    labels = {"baseline": "baseline (decode + append)", "syncfabric": "syncfabric listen (one process)"}
    for name, timing in timings.items():
        row = timing.row(total)
        label = labels.get(name) or f"syncfabric listen --workers {name.split('_')[1]}"
        table.add_row(label, f"{total:,}", f"{row['seconds']:.2f}", f"{row['drain_seconds']:.2f}",
                      f"{row['drain_events_per_second']:,}", f"{row['cpu_us_per_event']:,}")
    console.print(table)
    console.print(f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after; written to {args.out}")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    main()
