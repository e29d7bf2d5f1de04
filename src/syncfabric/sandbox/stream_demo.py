"""``syncfabric demo --stream``: continuous delivery through an outage, against simulated systems on 127.0.0.1.

The legacy ERP's night export is loaded and ``planning-out`` streams it to the planning platform. Then the platform
goes down while the plant keeps counting stock: changes queue in the change log, retries back off, and the flow
falls back to batch catch-up by itself. When the platform is back, the catch-up delivers what queued, the
reconciliation confirms the platform holds what the store does, and the flow streams again. Every switch is an
alert; the platform's journal shows each change applied once, in order.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from syncfabric.config import load_estate
from syncfabric.flows.runtime import Runtime
from syncfabric.flows.stream import FALLBACK, STREAMING, StreamConsumer, consumer_for
from syncfabric.sandbox.demo import INBOUND, TOKEN, _workdir, example_estate
from syncfabric.sandbox.legacy_erp import LegacyErp
from syncfabric.sandbox.planning_platform import create_app
from syncfabric.sandbox.server import serve

FLOW = "planning-out"
FAST_POLICIES = ("      retry: {max_attempts: 3, base_delay_seconds: 0.1, max_delay_seconds: 0.5}\n"
                 "      fallback: {outage_seconds: 1.5, catch_up_interval_seconds: 1}\n"
                 "      poll_interval_seconds: 0.05\n")
"""The demo's delivery policies: seconds instead of the example's minutes, so that an outage plays out quickly."""


def run_stream_demo(console: Console, *, seed: int = 7, items: int = 50, outage_seconds: float = 5.0,
                    folder: Path | None = None) -> None:
    from syncfabric.cli.status import alerts_table, status_table
    from syncfabric.cli.sync import delivery_table

    with _workdir(folder) as work, serve(create_app(token=TOKEN)) as planning_url:
        estate_file = work / "estate.yaml"
        estate_file.write_text(_with_fast_policies(example_estate().read_text()))
        erp = LegacyErp(work / "drop" / "erp-legacy", seed=seed, item_count=items)
        environ = {"PLANNING_TOKEN": TOKEN, "SYNCFABRIC__SYSTEMS__PLANNING__CONNECTION__BASE_URL": planning_url}
        console.print(Panel.fit(
            f"estate  {estate_file}\nplanning platform  {planning_url}\n"
            f"policy  retry 3 attempts from 0.1 s; fall back after 1.5 s of failures; catch up every 1 s",
            title="syncfabric demo --stream: continuous delivery through an outage"))
        faults = httpx.Client(base_url=f"{planning_url}/api/_sandbox")
        with Runtime(load_estate(estate_file, environ=environ)) as runtime, \
                runtime.connector("planning") as connector:
            erp.export()
            for name in INBOUND:
                runtime.run_flow(name)
            consumer = consumer_for(runtime, FLOW, connector)
            stop = threading.Event()
            thread = threading.Thread(target=consumer.run, args=(stop,), name="demo-deliver", daemon=True)
            thread.start()
            with Live(delivery_table([consumer]), console=console, refresh_per_second=4,
                      auto_refresh=console.is_terminal) as live:
                def until(condition, timeout: float = 60.0) -> None:
                    deadline = time.monotonic() + timeout
                    while not condition() and time.monotonic() < deadline:
                        live.update(delivery_table([consumer]))
                        time.sleep(0.1)

                store = runtime.store
                until(lambda: store.checkpoint(FLOW) == str(store.head()))
                console.print(f"Night export streamed: {consumer.stats.delivered:,} records at the platform.")
                faults.post("/faults", json={"outage": True}).raise_for_status()
                console.print(f"[red]The planning platform goes down[/] for {outage_seconds:g} s; the plant keeps "
                              "counting stock.")
                moved = 0
                ends = time.monotonic() + outage_seconds
                while time.monotonic() < ends:
                    moved += len(erp.change_inventory(3))
                    erp.export(("inventory",))
                    runtime.run_flow("inventory-in")
                    until(lambda: False, timeout=0.5)
                console.print(f"{moved} balance changes recorded during the outage; the flow is "
                              f"[yellow]{consumer.stats.mode}[/].")
                faults.post("/faults", json={"outage": False}).raise_for_status()
                console.print("[green]The planning platform is back.[/]")
                until(lambda: consumer.stats.mode == STREAMING and store.checkpoint(FLOW) == str(store.head()))
                stop.set()
                thread.join(timeout=30)
                live.update(delivery_table([consumer]))
            console.print()
            _summarize(console, consumer, faults)
            console.print(alerts_table(runtime.store.alerts(FLOW, limit=10)))
            console.print(status_table(runtime))


def _with_fast_policies(text: str) -> str:
    start = text.index("    delivery:\n")
    end = text.index("\n\n", start)
    return text[:start] + "    delivery:\n" + FAST_POLICIES.rstrip("\n") + text[end:]


def _summarize(console: Console, consumer: StreamConsumer, faults: httpx.Client) -> None:
    journal = faults.get("/journal").json()
    effects: dict[str, int] = {}
    for entry in journal:
        effects[entry["effect"]] = effects.get(entry["effect"], 0) + 1
    stale = effects.get("stale", 0)
    table = Table("what", "count", title="What the platform saw")
    for effect, count in sorted(effects.items()):
        table.add_row(effect, f"{count:,}")
    console.print(table)
    fell_back = any(f" {FALLBACK}:" in switch for switch in consumer.stats.switches)
    console.print(f"fell back by itself: {'yes' if fell_back else 'no'}; streaming again: "
                  f"{'yes' if consumer.stats.mode == STREAMING else 'no'}; "
                  f"changes applied out of order: {stale}; retries: {consumer.stats.retries}", highlight=False)
