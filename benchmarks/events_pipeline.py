"""The whole event path, side by side with a minimal pipeline: signed webhook batches in → validated → mapped →
durably stored (group commit) → delivered over HTTP to a local idempotent target.

Processes on 127.0.0.1: the **sender** (a logistics platform posting signed JSON arrays of shipment milestones,
over keep-alive connections), the **hub**, and the **target** (a minimal HTTP service, uvicorn, that applies each
key's version once and notes when it first applied each key). The hub is one of:

- **syncfabric**: `syncfabric listen`'s machinery on a webhook estate (FastAPI endpoint, HMAC signature and replay
  window, each event mapped and checked against the catalog's `ShipmentMilestone`, batches committed with records,
  change log and checkpoint in one transaction, SQLite WAL `synchronous=full`, answered after the commit), and a
  :class:`~syncfabric.flows.stream.StreamConsumer` (the path `syncfabric deliver` takes: folding, held-key check,
  retry wrapper, per-record outcomes, delivery log, checkpoint after the target confirmed) in a thread of the same
  process, woken by the commit;
- **syncfabric-2p**: the same, with the consumer in a process of its own (`syncfabric listen` and `syncfabric
  deliver` run side by side), woken by the listener's commits through SQLite (``PRAGMA data_version``);
- **baseline**: a bare ASGI endpoint on the same uvicorn that checks the same HMAC, decodes the array with msgspec,
  maps each event to a row (renames, the same key), a writer thread appends whatever is queued to one SQLite table
  in one transaction (WAL, `synchronous=FULL`) and then answers, and a delivery thread woken by the commit PUTs the
  new rows to the same target and moves its cursor. No validation, no change log, no checkpoint table, no holds.

Measurements per pipeline (each on a fresh store, the target reset):

1. sustained throughput: ``--events`` events sent by ``--senders`` concurrent clients in batches of
   ``--batch`` as fast as answers come; events applied by the target per second, first send to last application;
2. latency at fixed offered rates (``--rates``, default 10000, 5000 and 2000 events/s, 100 requests/s each carrying
   rate/100 events, for ``--seconds``): time from the sender's POST of an event to the target's application of it
   (both on the machine's monotonic clock); p50, p95, p99, max;
3. the hub's CPU time per event (every thread and process of the hub, not the sender's nor the target's): on a
   machine shared with other work the robust figure, and its ratio to the baseline's.

The sender process also waits for the target to hold every event (it asks every 20 ms): nothing but the hub runs in
the hub's process while it is measured.

With ``--trace``, each syncfabric run also reports where the time goes (``stages``): when each event passed each
stage of the hub (:data:`STAGES`), p50/p99 per step and its share among the 1% slowest events, the thread CPU per
commit, delivery and PUT, and the garbage collector's pauses by generation. Every run probes the disk where the
stores live first (``setup.disk``: fsync of a 4 KiB append, a 100-row SQLite commit with ``synchronous=FULL``).

Results go to benchmarks/results/events_pipeline.json and are shown as a table.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import itertools
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import msgspec
from harness import free_port, machine, request_body, save, start_uvicorn
from rich.console import Console
from rich.table import Table

SECRET = "whsec-bench-0123456789"
FLOW, OUT = "milestones-in", "milestones-out"
PATH = "/events/shipment-milestones"


def key_of(n: int) -> str:
    return f"SH-{n:08d}|departed|2026-03-02T08:00:00+00:00"


def event(n: int) -> dict[str, Any]:
    return {"shipment_id": f"SH-{n:08d}", "milestone": "departed", "occurred_at": "2026-03-02T08:00:00Z",
            "place": "DEHAM", "carrier": "OceanLine", "detail": f"vessel {n % 97}"}


# -- the target: applies each key's version once --------------------------------------------------------------------


def target_app() -> Any:
    held: dict[str, int] = {}
    at: dict[str, float] = {}  # when each key was first applied, on the machine's monotonic clock
    counts = {"applied": 0, "duplicates": 0, "requests": 0}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await request_body(receive)
        if scope["method"] == "PUT":
            applied = 0
            now = time.monotonic()
            for record in msgspec.json.decode(body):
                if held.get(record["key"], 0) < record["version"]:
                    held[record["key"]] = record["version"]
                    at.setdefault(record["key"], now)
                    applied += 1
                else:
                    counts["duplicates"] += 1
            counts["applied"] += applied
            counts["requests"] += 1
            answer = msgspec.json.encode({"applied": applied})
        elif scope["path"] == "/times":
            answer = msgspec.json.encode(at)
        elif scope["path"] == "/reset":
            held.clear()
            at.clear()
            counts.update(applied=0, duplicates=0, requests=0)
            answer = b"{}"
        else:
            answer = msgspec.json.encode({**counts, "keys": len(held)})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})

    return app


def start_target() -> tuple[subprocess.Popen[bytes], str]:
    return start_uvicorn("events_pipeline:target_app", "/counts", what="the target", app_dir=Path(__file__).parent)


def target_connector(url: str) -> Any:
    from syncfabric.connectors.base import Capability, Connector, OutboundRecord, WriteOutcome
    from syncfabric.errors import PermanentError, TransientError

    class LocalTarget(Connector):
        """A local idempotent HTTP target: one keep-alive connection, one PUT per batch."""

        kind = "bench-target"
        capabilities = Capability.WRITE

        def open(self) -> None:
            self.client = httpx.Client(base_url=url, timeout=30)

        def close(self) -> None:
            self.client.close()

        def test_connection(self) -> None:
            self.client.get("/counts").raise_for_status()

        def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
            body = msgspec.json.encode([{"key": r.key, "version": r.version, "data": r.payload} for r in records])
            try:
                response = self.client.put(f"/records/{entity}", content=body)
            except httpx.TransportError as exc:
                raise TransientError(str(exc), system=self.system) from exc
            if response.status_code >= 500:
                raise TransientError(f"HTTP {response.status_code}", system=self.system)
            if response.status_code >= 400:
                raise PermanentError(f"HTTP {response.status_code}", system=self.system)
            return WriteOutcome(accepted=[r.key for r in records])

    return LocalTarget("target", None)


# -- the sender: a logistics platform posting signed arrays ---------------------------------------------------------


def sign(stamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()


def sender_main(url: str, out: Path, *, first: int, events: int, batch: int, rate: float, senders: int,
                target: str = "") -> None:
    """Send ``events`` events from number ``first`` in batches; at ``rate`` events/s (0: as fast as answered). With
    ``target``, then wait until it holds them all (:func:`settle`): from this process, so that the polling costs the
    hub neither CPU time nor turns of its interpreter lock while it delivers the last events."""
    requests = [(first + start, min(batch, events - start)) for start in range(0, events, batch)]
    sent: list[tuple[int, int, float, float, int]] = []
    lock = threading.Lock()
    start = time.monotonic() + 0.2
    interval = batch / rate if rate else 0.0

    def worker(index: int) -> None:
        with httpx.Client(timeout=60) as client:
            for number in range(index, len(requests), senders):
                n, count = requests[number]
                body = msgspec.json.encode([event(i) for i in range(n, n + count)])
                due = start + number * interval
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                stamp = str(int(time.time()))
                at = time.monotonic()
                response = client.post(url, content=body, headers={
                    "X-Syncfabric-Timestamp": stamp, "X-Syncfabric-Signature": sign(stamp, body),
                    "Content-Type": "application/json"})
                with lock:
                    sent.append((n, count, at, time.monotonic(), response.status_code))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if target:
        settle(target, events)
    out.write_text(json.dumps(sent))


def send(url: str, folder: Path, *, first: int, events: int, batch: int, rate: float, senders: int,
         target: str = "") -> list[Any]:
    """Run the sender process (which, given ``target``, returns once the target holds every event)."""
    out = folder / f"sent-{first}.json"
    subprocess.run([sys.executable, __file__, "--role", "sender", "--url", url, "--sent", str(out),
                    "--first", str(first), "--events", str(events), "--batch", str(batch), "--rate", str(rate),
                    "--senders", str(senders), "--target", target], check=True)
    return list(json.loads(out.read_text()))


# -- syncfabric's hub ------------------------------------------------------------------------------------------------

ESTATE = """
version: 1
name: events-pipeline
store: sqlite:///{folder}/store.db
systems:
  logistics:
    kind: webhook
    connection: {{host: 127.0.0.1, port: {port}, path_prefix: /events, answer_timeout_seconds: 60}}
    credentials: {{secret: {{env: BENCH_WEBHOOK_SECRET}}}}
  target:
    kind: rest
    description: the local idempotent target (its connector is the benchmark's, one PUT per batch)
    connection: {{base_url: "{target}"}}
domains:
  milestones: {{entity: shipment_milestone, sync_model: event}}
mappings:
  logistics-milestones:
    system: logistics
    entity: shipment_milestone
    fields:
      shipment_id: shipment_id
      milestone: milestone
      occurred_at: occurred_at
      place: place
      carrier: carrier
      detail: detail
flows:
  {flow}:
    direction: inbound
    system: logistics
    entities: [shipment_milestone]
    source: shipment-milestones
    mapping: logistics-milestones
    batch_size: 2000
  {out}:
    direction: outbound
    system: target
    entities: [shipment_milestone]
    mode: changes
    batch_size: 2000
    delivery: {{retry: {{max_attempts: 3}}}}
"""


class SyncfabricHub:
    """``syncfabric listen``'s machinery in this process; delivery (a StreamConsumer, as ``syncfabric deliver`` runs
    it) in a thread of this process, or in a process of its own."""

    name = "syncfabric"
    processes = 1

    def __init__(self, folder: Path, target: str) -> None:
        from syncfabric.config import load_estate
        from syncfabric.flows.listen import Listener
        from syncfabric.flows.runtime import Runtime

        port = free_port()
        self.folder = folder
        self.target = target
        (folder / "estate.yaml").write_text(ESTATE.format(folder=folder, port=port, flow=FLOW,
                                                                     out=OUT, target=target))
        self.runtime = Runtime(load_estate(folder / "estate.yaml", environ={"BENCH_WEBHOOK_SECRET": SECRET}))
        self.store = self.runtime.store  # created and migrated before a second process opens it
        self.url = f"http://127.0.0.1:{port}{PATH}"
        self.listener = Listener(self.runtime, [FLOW])
        self.deliverers: Any = None
        self.child: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.processes == 1:  # as `syncfabric listen --deliver`: the product's consumers, threads of this process
            self.deliverers = deliverers_of(self.runtime, self.target)
            self.deliverers.start()
        else:
            ready = self.folder / "deliver.ready"
            self.child = subprocess.Popen([sys.executable, __file__, "--role", "deliver", "--estate",
                                           str(self.folder / "estate.yaml"), "--url", self.target,
                                           "--sent", str(self.folder / "deliver.json"),
                                           *(["--trace"] if TRACE is not None else [])])
            while not ready.exists():
                if self.child.poll() is not None:
                    raise RuntimeError("the delivery process ended")
                time.sleep(0.02)
        self.listener.start()

    def cpu(self) -> float:
        """CPU seconds of the hub so far: this process, and the delivery process if there is one."""
        return time.process_time() + (process_cpu(self.child.pid) if self.child is not None else 0.0)

    def close(self) -> dict[str, Any]:
        if self.child is not None:
            self.child.send_signal(signal.SIGTERM)
            self.child.wait(30)
            delivered = json.loads((self.folder / "deliver.json").read_text())
            batches = delivered["batches"]
            if TRACE is not None:
                TRACE.load(delivered["trace"])
        else:
            self.deliverers.join()
            [consumer] = self.deliverers.consumers
            batches = consumer.stats.batches
            consumer.connector.close()
        self.listener.stop()
        self.listener.join(30)
        result = self.listener.results[FLOW]
        self.runtime.close()
        return {"commits": result.batches, "events_per_commit": round(result.received / max(result.batches, 1), 1),
                "delivery_batches": batches}


class SyncfabricTwoProcesses(SyncfabricHub):
    name = "syncfabric-2p"
    processes = 2


def deliverers_of(runtime: Any, target: str) -> Any:
    """The flow's consumer as ``syncfabric deliver`` and ``syncfabric listen --deliver`` run it (the estate's batch
    size and retry policy), writing through the benchmark's connector."""
    from syncfabric.flows.deliverers import Deliverers

    connector = target_connector(target)
    connector.open()
    return Deliverers(runtime, [OUT], connectors={OUT: connector})


def deliver_main(estate: Path, target: str, out: Path) -> None:
    """The delivery process: the same consumer on the hub's store until SIGTERM."""
    from syncfabric.config import load_estate
    from syncfabric.flows.runtime import Runtime

    runtime = Runtime(load_estate(estate, environ={"BENCH_WEBHOOK_SECRET": SECRET}))
    deliverers = deliverers_of(runtime, target)
    signal.signal(signal.SIGTERM, lambda *_: deliverers.stop())
    deliverers.start()
    (estate.parent / "deliver.ready").touch()
    deliverers.wait(None)
    deliverers.join()
    [consumer] = deliverers.consumers
    consumer.connector.close()
    runtime.close()
    out.write_text(json.dumps({"batches": consumer.stats.batches,
                               "trace": TRACE.dump() if TRACE is not None else {}}))


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- where the time goes: stage times per event (--trace) ----------------------------------------------------------

STAGES = ("received", "batched", "committed", "read", "sending", "confirmed", "recorded")
"""The times noted per event in the hub (with ``--trace``), after the sender's POST: the request's events handed to
the flow's thread, its batch's commit begun and ended, the batch read by the consumer (its delivery begun), the PUT
begun and answered, the delivery's outcome committed. The target notes when it applied each event."""


TRACE: Trace | None = None


def number_of(key: str) -> int:
    return int(key[3:11])


class Trace:
    """Notes the stage times of every event in this process, by wrapping the functions of the event path (a cost
    of a few microseconds per batch, and the stage lists per event)."""

    def __init__(self) -> None:
        self.times: dict[str, list[tuple[float, list[int]]]] = {stage: [] for stage in STAGES}
        self.cpu: dict[str, float] = {"commit": 0.0, "deliver": 0.0, "put": 0.0}
        """Thread CPU seconds of the listener's commits, the consumer's deliveries, and their PUTs within them."""
        self.pauses: list[tuple[int, float]] = []
        """The garbage collector's pauses (every thread of the process waits), in seconds."""
        self._collecting = 0.0

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._collecting = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._collecting))

    def note(self, stage: str, numbers: list[int]) -> None:
        self.times[stage].append((time.monotonic(), numbers))

    def install(self, listening: bool, delivering: bool) -> None:
        import gc

        from syncfabric.connectors import inbox
        from syncfabric.flows import listen, stream

        gc.callbacks.append(lambda phase, info: TRACE._gc(phase, info) if TRACE is not None else None)

        if listening:
            put, commit = inbox.Inbox.put, listen.commit_batch

            def numbers_of(deliveries: Sequence[Any]) -> list[int]:
                return [number_of(row.get("shipment_id", "SH-00000000") if isinstance(row, dict) else "SH-00000000")
                        for delivery in deliveries for row in delivery.rows]

            def traced_put(box: Any, item: Any) -> None:  # the webhook's hand-over of a request
                self.note("received", numbers_of([item]))
                put(box, item)

            def traced_commit(store: Any, flow: str, field_map: Any, batch: Sequence[Any], *a: Any, **k: Any) -> Any:
                numbers = numbers_of(batch)
                self.note("batched", numbers)
                cpu = time.thread_time()
                acks = commit(store, flow, field_map, batch, *a, **k)
                self.cpu["commit"] += time.thread_time() - cpu
                self.note("committed", numbers)
                return acks

            inbox.Inbox.put = traced_put  # type: ignore[method-assign]
            listen.commit_batch = traced_commit  # type: ignore[assignment]
        if delivering:
            deliver = stream.deliver_changes

            def traced_deliver(store: Any, flow: str, connector: Any, changes: Sequence[Any], **k: Any) -> Any:
                numbers = [number_of(c.key) for c in changes]
                self.note("read", numbers)
                write = connector.write

                def traced_write(entity: str, records: Sequence[Any]) -> Any:
                    sent = [number_of(r.key) for r in records]
                    self.note("sending", sent)
                    cpu = time.thread_time()
                    outcome = write(entity, records)
                    self.cpu["put"] += time.thread_time() - cpu
                    self.note("confirmed", sent)
                    return outcome

                connector.write = traced_write
                cpu = time.thread_time()
                try:
                    return deliver(store, flow, connector, changes, **k)
                finally:
                    self.cpu["deliver"] += time.thread_time() - cpu
                    del connector.write
                    self.note("recorded", numbers)

            stream.deliver_changes = traced_deliver  # type: ignore[assignment]

    def first(self) -> dict[str, dict[int, float]]:
        """Per stage, when each event first reached it."""
        firsts: dict[str, dict[int, float]] = {}
        for stage, noted in self.times.items():
            seen = firsts[stage] = {}
            for at, numbers in noted:
                for n in numbers:
                    seen.setdefault(n, at)
        return firsts

    def dump(self) -> dict[str, Any]:
        return {**{stage: [[at, numbers] for at, numbers in noted] for stage, noted in self.times.items()},
                "cpu": self.cpu, "pauses": self.pauses}

    def load(self, dumped: dict[str, Any]) -> None:
        for stage, noted in dumped.items():
            if stage == "pauses":
                self.pauses.extend((g, s) for g, s in noted)
            elif stage == "cpu":
                self.cpu.update({name: self.cpu[name] + seconds for name, seconds in noted.items()})
            elif noted:
                self.times[stage] = [(at, numbers) for at, numbers in noted]


def stage_breakdown(trace: Trace, sent: list[Any], applied: dict[str, float]) -> dict[str, Any]:
    """Per step between stages (sender's POST → … → target applied): p50/p99 of its duration over all events, and
    its mean among the 1% slowest events end to end; and the batch sizes of each stage."""
    firsts = trace.first()
    posted = {i: at for n, count, at, _, _ in sent for i in range(n, n + count)}
    target = {number_of(key): at for key, at in applied.items()}
    order = [("posted", posted), *((stage, firsts[stage]) for stage in STAGES[:5]), ("applied", target),
             ("confirmed", firsts["confirmed"]), ("recorded", firsts["recorded"])]
    events = [n for n in posted if all(n in times for _, times in order)]
    if not events:
        return {}
    total = {n: (target[n] - posted[n]) * 1000 for n in events}
    slow = sorted(events, key=total.__getitem__)[-max(1, len(events) // 100):]

    def pct(values: list[float], p: float) -> float:
        return round(sorted(values)[min(len(values) - 1, int(len(values) * p))], 2)

    steps = {}
    for (a, ta), (b, tb) in itertools.pairwise(order):
        gaps = [(tb[n] - ta[n]) * 1000 for n in events]
        steps[f"{a}→{b}"] = {"p50_ms": pct(gaps, 0.5), "p99_ms": pct(gaps, 0.99),
                              "slowest_1pct_mean_ms": round(sum((tb[n] - ta[n]) * 1000 for n in slow) / len(slow), 2)}
    sizes = {stage: round(sum(len(numbers) for _, numbers in noted) / max(len(noted), 1), 1)
             for stage, noted in trace.times.items() if stage in ("batched", "read", "sending")}
    batches = {"commit": len(trace.times["committed"]), "deliver": len(trace.times["recorded"]),
               "put": len(trace.times["confirmed"])}
    cpu = {f"{name}_cpu_us_per_batch": round(seconds / max(batches[name], 1) * 1e6)
           for name, seconds in trace.cpu.items()}
    return {"events": len(events), "end_to_end_p99_ms": pct(list(total.values()), 0.99), "steps": steps,
            "mean_events_per": sizes, **cpu,
            "gc_pauses": {f"generation_{g}": {
                "count": len(ms := [s * 1000 for gen, s in trace.pauses if gen == g]),
                "max_ms": round(max(ms, default=0), 2), "total_ms": round(sum(ms), 1)} for g in (0, 1, 2)}}


# -- the minimal pipeline ------------------------------------------------------------------------------------------


class BaselineHub:
    """Decode, map, append to SQLite (WAL, synchronous=FULL, group commit), answer; deliver new rows to the target."""

    name = "baseline"

    def __init__(self, folder: Path, target: str) -> None:
        self.db = folder / "baseline.db"
        self.target = target
        self.inbox: queue.SimpleQueue[tuple[list[tuple[str, bytes]], Any, Any]] = queue.SimpleQueue()
        self.committed = threading.Condition()
        self.head = 0
        self.stop = threading.Event()
        self.commits = 0
        self.events = 0
        self.deliveries = 0
        self.stack: Any = None
        self.url = ""

    def app(self) -> Any:
        import asyncio

        inbox = self.inbox

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            body = await request_body(receive)
            headers = dict(scope["headers"])
            stamp = headers.get(b"x-syncfabric-timestamp", b"").decode()
            given = headers.get(b"x-syncfabric-signature", b"").decode()
            if not hmac.compare_digest(given, sign(stamp, body)) or abs(time.time() - int(stamp or 0)) > 300:
                status, answer = 401, b'{"detail": "bad signature"}'
            else:
                rows = [(f"{e['shipment_id']}|{e['milestone']}|{e['occurred_at'].replace('Z', '+00:00')}",
                         msgspec.json.encode({"shipment_id": e["shipment_id"], "milestone": e["milestone"],
                                              "occurred_at": e["occurred_at"], "place": e.get("place"),
                                              "carrier": e.get("carrier"), "detail": e.get("detail")}))
                        for e in msgspec.json.decode(body)]
                loop = asyncio.get_running_loop()
                done = loop.create_future()
                inbox.put((rows, loop, done))
                await done
                status, answer = 200, msgspec.json.encode({"status": "stored", "events": len(rows)})
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": answer})

        return app

    def writer(self) -> None:
        conn = sqlite3.connect(self.db, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, key TEXT, payload BLOB)")
        while not self.stop.is_set():
            try:
                first = self.inbox.get(timeout=0.05)
            except queue.Empty:
                continue
            taken = [first]
            while True:
                try:
                    taken.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            conn.execute("BEGIN IMMEDIATE")
            rows = [row for batch, _, _ in taken for row in batch]
            conn.executemany("INSERT INTO events (key, payload) VALUES (?, ?)", rows)
            conn.execute("COMMIT")
            head = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
            self.commits += 1
            self.events += sum(len(rows) for rows, _, _ in taken)
            with self.committed:
                self.head = head
                self.committed.notify_all()
            for _, loop, done in taken:
                loop.call_soon_threadsafe(lambda d=done: d.done() or d.set_result(None))
        conn.close()

    def deliverer(self) -> None:
        while not self.db.exists():
            time.sleep(0.01)
        conn = sqlite3.connect(self.db, isolation_level=None, check_same_thread=False)
        after = 0
        with httpx.Client(base_url=self.target, timeout=30) as client:
            while not self.stop.is_set():
                with self.committed:
                    if self.head <= after:
                        self.committed.wait(0.05)
                        continue
                rows = conn.execute("SELECT seq, key, payload FROM events WHERE seq > ? ORDER BY seq LIMIT 2000",
                                    (after,)).fetchall()
                if not rows:
                    continue
                body = msgspec.json.encode([{"key": key, "version": 1, "data": msgspec.json.decode(payload)}
                                            for _, key, payload in rows])
                client.put("/records/shipment_milestone", content=body).raise_for_status()
                after = rows[-1][0]
                self.deliveries += 1
        conn.close()

    def start(self) -> None:
        from contextlib import ExitStack

        from syncfabric.sandbox.server import serve

        self.threads = [threading.Thread(target=self.writer, daemon=True),
                        threading.Thread(target=self.deliverer, daemon=True)]
        for thread in self.threads:
            thread.start()
        self.stack = ExitStack()
        self.url = self.stack.enter_context(serve(self.app())) + PATH

    def cpu(self) -> float:
        return time.process_time()

    def close(self) -> dict[str, Any]:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
        self.stack.close()
        return {"commits": self.commits, "events_per_commit": round(self.events / max(self.commits, 1), 1),
                "delivery_batches": self.deliveries}


# -- measuring -------------------------------------------------------------------------------------------------------


def settle(target: str, expected: int, timeout: float = 120) -> None:
    """Wait until the target holds ``expected`` keys, asking every 20 ms over one connection (a new httpx client per
    question costs about 40 ms of CPU: its TLS context)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=target, timeout=30) as client:
        while client.get("/counts").json()["keys"] < expected and time.monotonic() < deadline:
            time.sleep(0.02)


def measure(hub_class: Any, folder: Path, target: str, *, events: int, batch: int, rate: float,
            senders: int) -> dict[str, Any]:
    httpx.post(f"{target}/reset").raise_for_status()
    if TRACE is not None:
        TRACE.__init__()  # type: ignore[misc]
    hub = hub_class(folder, target)
    hub.start()
    cpu = hub.cpu()  # the hub's own CPU time, every thread and process of it (not the sender's, not the target's)
    try:
        sent = send(hub.url, folder, first=0, events=events, batch=batch, rate=rate, senders=senders, target=target)
        cpu = hub.cpu() - cpu
    finally:
        extra = hub.close()
    confirmed: dict[str, float] = httpx.get(f"{target}/times").json()
    statuses = sorted({status for *_, status in sent})
    waits = sorted((confirmed[key_of(i)] - at) * 1000 for n, count, at, _, _ in sent
                   for i in range(n, n + count) if key_of(i) in confirmed)
    answers = sorted((answered - at) * 1000 for _, _, at, answered, _ in sent)
    first_sent = min(at for _, _, at, _, _ in sent)
    by_second: dict[int, list[float]] = {}  # where a p99 comes from: one bad second, or all of them
    for n, count, at, _, _ in sent if rate else ():
        by_second.setdefault(int(at - first_sent), []).extend(
            (confirmed[key_of(i)] - at) * 1000 for i in range(n, n + count) if key_of(i) in confirmed)
    last_sent = max(at for _, _, at, _, _ in sent)
    span = max(confirmed.values()) - first_sent if confirmed else float("nan")
    counts = httpx.get(f"{target}/counts").json()

    def pct(values: list[float], p: float) -> float:
        return round(values[min(len(values) - 1, int(len(values) * p))], 2)

    return {
        "events": events, "batch": batch, "offered_per_second": rate or None, "senders": senders,
        "achieved_offer_per_second": round(events / max(last_sent - first_sent + batch / rate, 1e-9)) if rate
        else None,
        "statuses": statuses, "confirmed": len(waits), "target_applied": counts["applied"],
        "target_duplicates": counts["duplicates"],
        "events_per_second": round(len(waits) / span) if waits else 0,
        "p50_ms": pct(waits, 0.50), "p95_ms": pct(waits, 0.95), "p99_ms": pct(waits, 0.99),
        "max_ms": round(waits[-1], 2), "hub_cpu_us_per_event": round(cpu / max(len(waits), 1) * 1e6, 1),
        "answer_p50_ms": pct(answers, 0.5), "answer_p99_ms": pct(answers, 0.99),
        "p99_ms_by_second_sent": [pct(sorted(values), 0.99) for _, values in sorted(by_second.items()) if values]
        if rate else None,
        **extra,
        **({"stages": stage_breakdown(TRACE, sent, confirmed)} if TRACE is not None and hub_class is not BaselineHub
           else {}),
    }


def disk_probe(folder: Path, count: int = 200) -> dict[str, float]:
    """The disk's own share of a durable commit, measured where the stores live: ``fsync`` of a 4 KiB append, and a
    SQLite commit of 100 rows in WAL mode with ``synchronous=FULL`` (what the baseline does per commit)."""
    def pct(values: list[float], p: float) -> float:
        values = sorted(values)
        return round(values[min(len(values) - 1, int(len(values) * p))], 3)

    syncs: list[float] = []
    with open(folder / "probe", "ab") as file:
        for _ in range(count):
            file.write(b"x" * 4096)
            file.flush()
            at = time.perf_counter()
            os.fsync(file.fileno())
            syncs.append((time.perf_counter() - at) * 1000)
    commits: list[float] = []
    db = sqlite3.connect(folder / "probe.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, payload TEXT)")
    for _ in range(count):
        at = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO t (payload) VALUES (?)", [("x" * 200,)] * 100)
        db.execute("COMMIT")
        commits.append((time.perf_counter() - at) * 1000)
    db.close()
    return {"fsync_p50_ms": pct(syncs, 0.5), "fsync_p99_ms": pct(syncs, 0.99), "fsync_max_ms": pct(syncs, 1),
            "sqlite_commit_100_rows_p50_ms": pct(commits, 0.5), "sqlite_commit_100_rows_p99_ms": pct(commits, 0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=["hub", "sender", "deliver"], default="hub")
    parser.add_argument("--events", type=int, default=50_000, help="events of the throughput run")
    parser.add_argument("--batch", type=int, default=500, help="events per request in the throughput run")
    parser.add_argument("--senders", type=int, default=4, help="concurrent clients in the throughput run")
    parser.add_argument("--rates", default="10000,5000,2000", help="offered events/s of the latency runs")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--pipelines", default="syncfabric,syncfabric-2p,baseline",
                        help="which pipelines to run, of syncfabric, syncfabric-2p and baseline")
    parser.add_argument("--estate", type=Path)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--url", default="")
    parser.add_argument("--target", default="", help="sender: wait until this target holds every event sent")
    parser.add_argument("--sent", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "events_pipeline.json")
    parser.add_argument("--trace", action="store_true",
                        help="note when each event passes each stage in the hub and report where the time goes "
                             "(costs the hub a little CPU)")
    args = parser.parse_args()
    global TRACE
    if args.trace:
        TRACE = Trace()
        TRACE.install(listening=args.role == "hub", delivering=args.role in ("hub", "deliver"))
    if args.role == "deliver":
        deliver_main(args.estate, args.url, args.sent)
        return
    if args.role == "sender":
        sender_main(args.url, args.sent, first=args.first, events=args.events, batch=args.batch, rate=args.rate,
                    senders=args.senders, target=args.target)
        return
    console = Console()
    with tempfile.TemporaryDirectory(prefix="bench-disk-") as folder:
        disk = disk_probe(Path(folder))
    console.print({"disk": disk})
    process, target = start_target()
    pipelines = {"syncfabric": SyncfabricHub, "syncfabric-2p": SyncfabricTwoProcesses, "baseline": BaselineHub}
    hubs = {name: pipelines[name] for name in args.pipelines.split(",")}
    results: dict[str, Any] = {name: {} for name in hubs}
    rates = [float(r) for r in args.rates.split(",") if r]
    start_load = os.getloadavg()[0]
    try:
        runs: list[tuple[str, dict[str, Any]]] = [
            ("throughput", {"events": args.events, "batch": args.batch, "rate": 0.0, "senders": args.senders})]
        for rate in rates:
            per_request = max(1, round(rate / 100))  # 100 requests/s
            runs.append((f"latency_{int(rate)}", {"events": int(rate * args.seconds), "batch": per_request,
                                                  "rate": rate, "senders": 8}))
        for index, (label, options) in enumerate(runs):
            order = list(hubs) if index % 2 == 0 else list(reversed(hubs))  # the machine is shared: alternate
            for name in order:
                console.print(f"[bold]{name}[/]: {label} ...")
                with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as folder:
                    results[name][label] = measure(hubs[name], Path(folder), target, **options)
                console.print(results[name][label])
    finally:
        process.terminate()
        process.wait(timeout=10)
    results["ratio"] = {}
    base = results.get("baseline")
    for name in hubs:
        if name == "baseline" or base is None:
            continue
        ours = results[name]
        results["ratio"][name] = {
            "throughput_over_baseline": round(
                ours["throughput"]["events_per_second"] / max(base["throughput"]["events_per_second"], 1), 2),
            "cpu_per_event_over_baseline": round(
                ours["throughput"]["hub_cpu_us_per_event"] / max(base["throughput"]["hub_cpu_us_per_event"], 1e-9), 2),
            **{f"p99_{int(rate)}_over_baseline": round(
                ours[f"latency_{int(rate)}"]["p99_ms"] / max(base[f"latency_{int(rate)}"]["p99_ms"], 1e-9), 2)
               for rate in rates},
        }
    load = os.getloadavg()
    results["setup"] = {
        "ingest": "webhook HTTP (signed JSON arrays, keep-alive)", "store": "sqlite WAL synchronous=full",
        "target": "local idempotent HTTP target (uvicorn, own process)", "events": args.events, "batch": args.batch,
        "senders": args.senders, "rates": rates, "seconds": args.seconds,
        "machine": f"{machine()}, load average {load[0]:.1f} at the end", "disk": disk,
        "load_average_at_start": round(start_load, 1)}
    table = Table("pipeline", "run", "offered (/s)", "events/s", "p50 (ms)", "p95 (ms)", "p99 (ms)", "max (ms)",
                  "hub CPU (us/event)", "events/commit", title="Webhook → store → target, end to end")
    for name in hubs:
        for label, r in results[name].items():
            table.add_row(name, label, f"{r['offered_per_second'] or 'max'}", f"{r['events_per_second']:,}",
                          f"{r['p50_ms']}", f"{r['p95_ms']}", f"{r['p99_ms']}", f"{r['max_ms']}",
                          f"{r['hub_cpu_us_per_event']}", f"{r['events_per_commit']}")
    console.print(table)
    save(console, results, args.out)


if __name__ == "__main__":
    main()
