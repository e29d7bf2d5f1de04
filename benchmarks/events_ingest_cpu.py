"""CPU per event of the ingest half of the event path, in one thread: a signed webhook request → the endpoint's ASGI
app (signature, replay window, decoding) → the listener's batch (mapping, catalog checks) → the store's group commit
(records, change log, checkpoint; SQLite WAL, ``synchronous=full``) → the acknowledgements → the answer.

The same estate as ``events_pipeline.py``. The ASGI app is the one the webhook connector serves, called directly (no
sockets, no uvicorn) on one event loop, and each batch is committed with :func:`syncfabric.flows.listen.commit_batch`
and acknowledged with :func:`~syncfabric.flows.listen.acknowledge` in the same thread, so the figure is the product's
own CPU per event without the HTTP server's, the scheduling of threads, or the waits for the interpreter lock.
``--profile`` shows where it goes (cProfile, by own time).

To compare code versions, run it with ``PYTHONPATH`` set to another checkout's ``src`` (and alternate). Code from
before a request was handed to the listener whole (one ``Received`` per event, acknowledged one by one) is run the
way its listener ran it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).parent))
from events_pipeline import ESTATE, FLOW, OUT, PATH, SECRET, event, free_port, sign


def run(folder: Path, *, requests: int, batch: int, per_commit: int, profile: bool) -> dict[str, Any]:
    import syncfabric
    import syncfabric.sandbox.server as server
    from syncfabric.config import load_estate
    from syncfabric.flows import listen
    from syncfabric.flows.heap import settle_after_start_up
    from syncfabric.flows.listen import ListenResult, commit_batch
    from syncfabric.flows.runtime import Runtime

    apps: list[Any] = []

    @contextlib.contextmanager
    def capture(app: Any, host: str = "", port: int = 0, **_: Any) -> Any:
        apps.append(app)
        yield "http://127.0.0.1:0"

    server.serve = capture  # the connector serves its app through this; here it is called directly
    (folder / "estate.yaml").write_text(ESTATE.format(folder=folder, port=free_port(), flow=FLOW, out=OUT,
                                                      target="http://127.0.0.1:9"))
    runtime = Runtime(load_estate(folder / "estate.yaml", environ={"BENCH_WEBHOOK_SECRET": SECRET}))
    store = runtime.store
    flow = runtime.estate.flows[FLOW]
    connector = runtime.connector(flow.system)
    connector.open()
    assert flow.source is not None and flow.mapping is not None
    subscription: Any = connector.subscribe(flow.source, durable=FLOW, batch_size=batch * per_commit, max_wait=0,
                                       poll=0)
    [app] = apps
    settle_after_start_up()  # as the listener does once subscribed
    field_map = runtime.field_map(flow.mapping)
    rules = runtime.rules(field_map.entity_cls.entity)
    result = ListenResult(flow=FLOW, direction="inbound")
    bodies = [msgspec.json.encode([event(i) for i in range(n * batch, (n + 1) * batch)]) for n in range(requests)]
    statuses: list[int] = []
    acknowledge = getattr(listen, "acknowledge", None)
    if acknowledge is not None:
        def count(taken: list[Any]) -> int:
            return sum(len(received.rows) for received in taken)
    else:  # one Received per event
        count = len

        def acknowledge(taken: list[Any], acks: list[Any]) -> None:
            for received, ack in zip(taken, acks, strict=True):
                received.ack(ack)

    async def post(body: bytes) -> None:
        stamp = str(int(time.time()))
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "root_path": "", "query_string": b"",
                 "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode()),
                             (b"x-syncfabric-timestamp", stamp.encode()),
                             (b"x-syncfabric-signature", sign(stamp, body).encode())],
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8800)}
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)

    async def drive() -> None:
        for start in range(0, requests, per_commit):
            tasks = [asyncio.create_task(post(body)) for body in bodies[start:start + per_commit]]
            taken: list[Any] = []
            while count(taken) < batch * len(tasks):  # let the requests reach the inbox
                await asyncio.sleep(0)
                taken.extend(subscription.inbox.take(batch * per_commit, 0, 0))
            acknowledge(taken, commit_batch(store, FLOW, field_map, taken, result, rules=rules))
            await asyncio.gather(*tasks)

    profiler = None
    if profile:  # deterministic (cProfile): on the hot path the calls, not the waits, are the question
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(drive())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
    subscription.close()
    events = requests * batch
    stored = store.count("shipment_milestone")
    runtime.close()
    if set(statuses) != {200} or stored != events:
        raise SystemExit(f"answers {sorted(set(statuses))}, {stored} of {events} events stored")
    return {"code": str(Path(syncfabric.__file__).parent), "events": events, "batch": batch,
            "events_per_commit": batch * per_commit, "cpu_us_per_event": round(cpu / events * 1e6, 2),
            "wall_us_per_event": round(wall / events * 1e6, 2), "stored": stored, "received": result.received,
            "load": round(os.getloadavg()[0], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--batch", type=int, default=500, help="events per request")
    parser.add_argument("--per-commit", type=int, default=2, help="requests committed together")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-cpu-") as folder:
        print(json.dumps(run(Path(folder), requests=args.requests, batch=args.batch, per_commit=args.per_commit,
                             profile=args.profile)))


if __name__ == "__main__":
    main()
