"""``syncfabric demo``: the global manufacturer, one night and one day, hybrid sync against nightly batch.

Every system is simulated on 127.0.0.1 and speaks its real protocol: ERP North America is the SAP S/4HANA OData
emulator, ERP Europe the JSON ERP of :mod:`.erp_europe`, ERP Asia-Pacific the legacy CSV drop folder; the four
plants' MES publish over MQTT (QoS 1, to a mosquitto the demo starts, :mod:`.mosquitto`) when mosquitto and
aiomqtt are installed, and post signed webhooks otherwise; the logistics platform and the supplier portal post
signed webhooks to ``listen``; the planning platform takes frePPLe-style REST and runs its netting.

The day runs on a simulated clock (:class:`SimClock`, set as the observability clock with
:func:`syncfabric.observe.clock.use_clock`): each tick moves it ``TICK`` (10 minutes) forward, and the sources
stamp what they report with it, so ages and latencies read in minutes and hours although the day takes seconds.

1. night: master data by batch from all three ERPs, the first stock snapshot, to the planning platform;
2. day, hybrid: ERP stock by net change every tick, the legacy ERP's extract every half hour, plant and partner
   events as they happen, the planning platform fed continuously; faults on the way: malformed MES events
   (quarantine), ERP Europe answering 429 (retries), the planning platform refusing one record (dead letter,
   replayed after the fix) and going down (fallback to batch catch-up, then streaming again);
3. the platform plans; planned orders go back into the ERP that owns each plant (:mod:`syncfabric.flows.write_back`)
   as purchase or production orders, once each although sent twice; exceptions wait for planner review, and the
   demo's planner approves one; the legacy ERP's import refuses the orders of a vendor a buyer blocked, which
   come back from its reject file as dead letters and are replayed once the vendor is unblocked;
4. the same day again with nightly batch only, in a second store; then both measured by ``syncfabric.observe``.

With ``erp_europe="tryton"`` (``syncfabric demo --erp-europe tryton``) ERP Europe is a real Tryton instead of the
JSON ERP, and Munich's planned orders go back into it (:mod:`.global_tryton`).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import msgspec
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from syncfabric.config import load_estate
from syncfabric.errors import SyncfabricError
from syncfabric.flows.listen import Listener
from syncfabric.flows.reconcile import reconcile
from syncfabric.flows.runtime import Runtime
from syncfabric.flows.stream import StreamConsumer, consumer_for
from syncfabric.observe import clock as observe_clock
from syncfabric.observe.completeness import completeness
from syncfabric.observe.freshness import change_latencies, freshness, percentile
from syncfabric.sandbox import global_tryton
from syncfabric.sandbox.demo import example_estate
from syncfabric.sandbox.emitter import Emitter, EmitterFaults, MqttEmitter, WebhookEmitter
from syncfabric.sandbox.erp_europe import create_erp_europe, local_stamp
from syncfabric.sandbox.global_tryton import EuropeWriteBack
from syncfabric.sandbox.legacy_erp import LegacyErp
from syncfabric.sandbox.logistics import LogisticsPartners
from syncfabric.sandbox.mes import PLANTS, SOURCES, PlantMes
from syncfabric.sandbox.mosquitto import Broker, find_mosquitto, running_broker
from syncfabric.sandbox.planning_platform import create_app as planning_app
from syncfabric.sandbox.rest_api import RestState
from syncfabric.sandbox.rest_api import create_app as rest_app
from syncfabric.sandbox.sap_odata import create_app as sap_app
from syncfabric.sandbox.sap_odata.state import SapState
from syncfabric.sandbox.server import serve
from syncfabric.store import Store

ESTATE = "global-manufacturer"
TOKEN = "demo-token"
SAP_USER, SAP_PASSWORD = "INTEGRATION", "Welcome1!"
PLANT_DIRECTORY = """SITE,SITE_NAME,SITE_TYPE,PARENT_SITE,TIME_ZONE
NA,North America,region,,America/Chicago
EU,Europe,region,,Europe/Berlin
1710,Palo Alto Plant,plant,NA,America/Los_Angeles
1010,Hamburg Plant,plant,EU,Europe/Berlin
DE-MUC,Munich Plant,plant,EU,Europe/Berlin
"""
"""The group's plant directory for the plants of ERP North America and Europe (the legacy ERP exports its own)."""
TICK = dt.timedelta(minutes=15)
NIGHT = dt.datetime(2026, 11, 3, 1, 0, tzinfo=dt.UTC)
DAY_START = dt.datetime(2026, 11, 3, 6, 0, tzinfo=dt.UTC)
DAY_HOURS = 12
MASTER_FLOWS = ("ref-locations-in", "apac-locations-in", "na-items-in", "eu-items-in", "apac-items-in",
                "na-item-locations-in", "eu-item-locations-in", "apac-item-locations-in", "na-suppliers-in",
                "eu-suppliers-in", "apac-suppliers-in", "terms-in", "eu-item-suppliers-in", "apac-item-suppliers-in",
                "eu-boms-in", "na-boms-in", "apac-boms-in")
STOCK_FLOWS = ("na-inventory-in", "eu-inventory-in", "apac-inventory-in")
EVENT_FLOWS = ("completions-in", "movements-in", "downtime-in", "quality-holds-in", "milestones-in",
               "confirmations-in", "supplier-delays-in")
PLANNING = "planning-out"
WRITE_BACK = {"ERP North America (SAP)": "na-planned-orders-out", "ERP Europe": "eu-planned-orders-out",
              "ERP Asia-Pacific (legacy)": "apac-planned-orders-out"}
"""The write-back flow of each regional ERP."""
OUTAGE_TICKS = 4
"""The planning platform is down for this many ticks (an hour of the simulated day) ..."""
OUTAGE_WALL_SECONDS = 2.5
"""... and at least this long in real seconds, past the demo's fallback threshold (1 s)."""
FAST_DELIVERY = ("    delivery:\n"
                 "      retry: {max_attempts: 3, base_delay_seconds: 0.05, max_delay_seconds: 0.2}\n"
                 "      fallback: {outage_seconds: 1.0, catch_up_interval_seconds: 0.5}\n"
                 "      poll_interval_seconds: 0.05\n")
"""The demo's delivery policies: seconds instead of the example's minutes, so that an outage plays out quickly."""


class SimClock:
    """The simulated time of the demo: set by the day's loop, read by the sources and by ``syncfabric.observe``."""

    def __init__(self, start: dt.datetime) -> None:
        self.at = start

    def now(self) -> dt.datetime:
        return self.at


@dataclass
class PolicyRun:
    """What one policy's day measured."""

    name: str
    ages: list[float] = field(default_factory=list)
    """Age in seconds of the newest inventory at the planning platform, per plant, sampled every tick."""
    latencies: list[float] = field(default_factory=list)
    completeness: float | None = None
    quarantined: Counter[str] = field(default_factory=Counter)
    dead_letters: int = 0
    fallbacks: int = 0
    events: int = 0
    planned_orders: int = 0
    unsourced: int = 0
    approved: int = 0
    events_emitted: int = 0
    """Distinct events the plants and partners reported (a duplicate counts once)."""
    malformed_sent: int = 0
    open_dead_letters: int = 0
    throttled: int = 0
    """429 answers ERP Europe gave (and the connector retried)."""
    purchase_orders: int = 0
    """Purchase orders SAP holds for the day's planned orders."""
    orders: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Documents each ERP holds for the day's planned orders, by (ERP, kind), after sending every order twice."""
    waiting: list[tuple[str, str, str]] = field(default_factory=list)
    """Planned orders waiting for planner review: (flow, planned order, why)."""
    transport: str = "none"
    """How the plants' MES events travelled: ``mqtt`` or ``webhooks`` (``none`` under batch only)."""
    planner_approved: list[str] = field(default_factory=list)
    """Planned orders the demo's planner approved after review (and that were then written)."""
    import_refusals: list[tuple[str, str]] = field(default_factory=list)
    """Orders the legacy ERP's import refused, read back from its reject files into dead letters: (key, reason)."""
    refusals_replayed: int = 0
    """Of those, replayed after the fix and booked."""
    europe: EuropeWriteBack | None = None
    """With Tryton as ERP Europe: Munich's planned orders written back into it."""


@dataclass
class Systems:
    """The simulated estate: URLs and handles of every system."""

    planning: str
    erp_eu: str
    portal: str
    sap: str
    apps: dict[str, object]
    mes_port: int
    partners_port: int
    sap_state: object = None
    erp_eu_kind: str = "JSON ERP (paged REST)"


def run_global_demo(console: Console, *, duration: float = 30.0, seed: int = 7, keep_running: bool = False,
                    folder: Path | None = None, hours: int = DAY_HOURS, mqtt: bool | None = None,
                    erp_europe: str = "sandbox") -> dict[str, PolicyRun]:
    """Play the night and ``hours`` of the day under both policies; print and return what was measured.
    ``duration`` is the real time the days take at least (the work takes what it takes on top). ``mqtt``: the
    plants' MES publish over MQTT to a local mosquitto (True), post webhooks (False), or MQTT when mosquitto
    and aiomqtt are installed (None). ``erp_europe`` is ``sandbox`` (the JSON ERP) or ``tryton`` (a real Tryton,
    from the Tryton environment)."""
    if erp_europe not in ("sandbox", "tryton"):
        raise SyncfabricError(f"ERP Europe is 'sandbox' or 'tryton', not {erp_europe!r}")
    if erp_europe == "tryton":
        from syncfabric.sandbox.tryton_server import TrytonUnavailable, available, missing_message

        if not available():
            raise TrytonUnavailable(missing_message())
    ticks = int(dt.timedelta(hours=hours) / TICK)
    pause = max(0.0, duration / 2 / ticks)
    results: dict[str, PolicyRun] = {}
    with _workdir(folder) as work, _quiet_logs():
        for policy in ("hybrid", "batch-only"):
            console.rule(f"[bold]{policy}[/]: night, then the day")
            results[policy] = _play(console, work / policy, policy, seed=seed, ticks=ticks, pause=pause,
                                    keep_running=keep_running and policy == "batch-only", mqtt=mqtt,
                                    erp_europe=erp_europe)
        console.print(orders_table(results["hybrid"]))
        if results["hybrid"].waiting:
            console.print(review_table(results["hybrid"]))
        for key, reason in results["hybrid"].import_refusals:
            console.print(f"dead letter {key}: {escape(reason)}", highlight=False)
        console.print(comparison_table(results))
        if folder is not None:
            console.print(f"The estates are kept in {work}/hybrid and {work}/batch-only: try "
                          f"`syncfabric status -e {work / 'hybrid' / 'estate.yaml'}`.")
    return results


def mqtt_unavailable() -> str | None:
    """Why the MES cannot publish over MQTT here (None: it can)."""
    if find_mosquitto() is None:
        return "no mosquitto installed"
    try:
        import aiomqtt  # noqa: F401
    except ImportError:
        return "aiomqtt missing: pip install 'syncfabric[mqtt]'"
    return None


def mqtt_estate(text: str, broker: Broker) -> str:
    """The estate with the plants' MES on the MQTT broker: system ``plant-mes`` of kind mqtt, and each MES flow
    subscribed to its event's catalog topic at every plant (``mfg/production/completed/+``)."""
    from syncfabric.events.catalog import event_type

    start = text.index("  plant-mes:\n")
    end = text.index("\n  partners:\n", start)
    system = ("  plant-mes:\n    kind: mqtt\n    description: MES of the four plants, publishing catalog events with "
              f"QoS 1\n    connection: {{host: {broker.host}, port: {broker.port}, client_id: syncfabric-demo}}")
    text = text[:start] + system + text[end:]
    for entity, source in SOURCES.items():
        text = text.replace(f"source: {source},", f'source: "{event_type(entity).mqtt_topic("+")}",')
    return text


def _play(console: Console, work: Path, policy: str, *, seed: int, ticks: int, pause: float,
          keep_running: bool, mqtt: bool | None = None, erp_europe: str = "sandbox") -> PolicyRun:
    work.mkdir(parents=True, exist_ok=True)
    sim = SimClock(NIGHT)
    run = PolicyRun(policy)
    hybrid = policy == "hybrid"
    with ExitStack() as stack:
        stack.enter_context(observe_clock.use_clock(sim.now))
        systems, environ, erp_apac = _start_systems(stack, work, seed, erp_europe)
        estate_text = _demo_estate(example_estate(ESTATE).read_text())
        broker: Broker | None = None
        if hybrid:
            why_not = mqtt_unavailable() if mqtt is not False else "webhooks asked for"
            if why_not is None:
                broker = stack.enter_context(running_broker(find_mosquitto() or "mosquitto"))
                estate_text = mqtt_estate(estate_text, broker)
                environ.pop("SYNCFABRIC__SYSTEMS__PLANT_MES__CONNECTION__PORT")  # the webhook endpoint's port
                run.transport = "mqtt"
                console.print(f"MES events over [bold]MQTT[/] (QoS 1, mosquitto on {broker.host}:{broker.port})")
            elif mqtt:
                raise SyncfabricError(f"the demo cannot use MQTT: {why_not}")
            else:
                run.transport = "webhooks"
                console.print(f"MES events over [bold]HTTP webhooks[/] (signed; MQTT not used: {escape(why_not)})")
        master_flows = MASTER_FLOWS  # the overlay last: it rewrites the estate's text from its YAML
        if erp_europe == "tryton":
            estate_text = global_tryton.estate_text(estate_text, example_estate(ESTATE).with_name(
                global_tryton.OVERLAY))
            master_flows = (*MASTER_FLOWS, *global_tryton.MASTER_FLOWS)
        estate_file = work / "estate.yaml"
        estate_file.write_text(estate_text)
        runtime = stack.enter_context(Runtime(load_estate(estate_file, environ=environ)))
        sap = systems.sap_state
        erp_eu = systems.apps["erp-eu"].state.rest  # type: ignore[attr-defined]
        planning = stack.enter_context(httpx.Client(base_url=f"{systems.planning}/api/_sandbox", timeout=30))
        if hybrid:
            mes_line = (f"MQTT QoS 1 → mosquitto {broker.host}:{broker.port}" if broker is not None
                        else f"signed webhooks → 127.0.0.1:{systems.mes_port}")
            console.print(_estate_panel(systems, estate_file, mes_line))

        # 1. night ------------------------------------------------------------------------------------------
        _snapshot(erp_apac, sim.at)
        erp_apac.export()
        for name in (*master_flows, *STOCK_FLOWS):
            runtime.run_flow(name)
        runtime.run_flow(PLANNING)
        console.print(f"night {sim.at:%H:%M}: master data and stock of {len(PLANTS)} plants and 3 ERPs at the "
                      f"planning platform ({runtime.store.count('item'):,} items, "
                      f"{runtime.store.count('inventory_balance'):,} balances)")

        # 2. the day ------------------------------------------------------------------------------------------
        rng = random.Random(seed)
        items = sorted(row.key for row in runtime.store.current("item"))
        mes = PlantMes(items, seed=seed)
        partners = LogisticsPartners(PLANTS, sorted(row.key for row in runtime.store.current("supplier")), items,
                                     seed=seed)
        mes_faults = EmitterFaults(malformed=0.04, duplicate=0.05, out_of_order=0.05)
        consumer: StreamConsumer | None = None
        stop = threading.Event()
        if hybrid:
            listener = Listener(runtime, list(EVENT_FLOWS))
            listener.start()
            stack.callback(lambda: (listener.stop(), listener.join()))
            mes_out: Emitter = (
                MqttEmitter(broker.host, broker.port, seed=seed, faults=mes_faults) if broker is not None
                else WebhookEmitter(f"http://127.0.0.1:{systems.mes_port}/events", TOKEN, seed=seed,
                                    faults=mes_faults))
            partners_out = WebhookEmitter(f"http://127.0.0.1:{systems.partners_port}/events", TOKEN, seed=seed)
            stack.callback(mes_out.close)
            stack.callback(partners_out.close)
            connector = stack.enter_context(runtime.connector("planning"))
            consumer = consumer_for(runtime, PLANNING, connector)
            thread = threading.Thread(target=consumer.run, args=(stop,), name="demo-planning-out", daemon=True)
            thread.start()
            stack.callback(lambda: (stop.set(), thread.join(timeout=30)))
        sap_stock = sorted({(row["Material"], row["Plant"]) for row in sap.tables["A_MatlStkInAcctMod"].values()})
        eu_stock = sorted(erp_eu.collections["stock"])
        poisoned_row = erp_eu.collections["stock"][eu_stock[0]]
        poisoned = f"{poisoned_row['MATNR'].removeprefix('MAT-').replace('-', '')}/DE-MUC/"
        with _progress(console) as progress:
            task = progress.add_task(f"{policy} day", total=ticks)
            for tick in range(ticks):
                sim.at = DAY_START + tick * TICK
                # the sources move, the same way under both policies (one seed)
                for material, plant in rng.sample(sap_stock, k=2):  # goods issues draw raw materials down
                    sap.set_stock(material, plant, Decimal(rng.randint(0, 40 if material.startswith("RM") else 900)))
                changed = [dict(erp_eu.collections["stock"][key]) for key in rng.sample(eu_stock, k=2)]
                for row in changed:
                    row.update(LABST=rng.randint(0, 500), STAMP=local_stamp(sim.at), updated_at=None)
                erp_eu.upsert("stock", changed)
                erp_apac.change_inventory(2, at=sim.at)
                plant_events, partner_events = mes.tick(sim.at), partners.tick(sim.at)
                if not hybrid:
                    _sample(run, runtime, sim.at)
                    progress.advance(task)
                    continue
                if tick == ticks // 4:
                    systems.apps["erp-eu"].state.faults.update(  # type: ignore[attr-defined]
                        fail_next_n=3, fail_status=429, retry_after=0.1)
                    progress.console.print(f"{sim.at:%H:%M} ERP Europe answers 429 Too Many Requests (3 times)")
                if tick == ticks // 3:
                    planning.post("/faults", json={"reject_keys": [poisoned]}).raise_for_status()
                    erp_eu.upsert("stock", [{**poisoned_row, "LABST": rng.randint(0, 500), "STAMP": local_stamp(sim.at),
                                             "updated_at": None}])
                    progress.console.print(f"{sim.at:%H:%M} the planning platform refuses buffer {poisoned}")
                if tick == ticks // 2:
                    planning.post("/faults", json={"outage": True}).raise_for_status()
                    progress.console.print(f"{sim.at:%H:%M} [red]the planning platform goes down[/]")
                if ticks // 2 <= tick < ticks // 2 + OUTAGE_TICKS:
                    time.sleep(OUTAGE_WALL_SECONDS / OUTAGE_TICKS)  # long enough, in real seconds, to fall back
                if tick == ticks // 2 + OUTAGE_TICKS:
                    planning.post("/faults", json={"outage": False}).raise_for_status()
                    progress.console.print(f"{sim.at:%H:%M} [green]the planning platform is back[/]")
                mes_out.emit(plant_events)
                partners_out.emit(partner_events)
                for name in ("na-inventory-in", "eu-inventory-in"):
                    runtime.run_flow(name)
                if tick % 2 == 0:  # the legacy ERP's extract, every half hour
                    _snapshot(erp_apac, sim.at)
                    erp_apac.export(("inventory",))
                    runtime.run_flow("apac-inventory-in")
                _wait_delivered(runtime, consumer, pause)
                _sample(run, runtime, sim.at)
                progress.update(task, advance=1, description=f"{policy} day {sim.at:%H:%M} "
                                f"({consumer.stats.mode}, {consumer.stats.delivered:,} sent)")
        sim.at = DAY_START + ticks * TICK
        if hybrid:
            mes_out.flush()
            partners_out.flush()
            _wait_ingested(listener, mes_out)
            planning.post("/faults", json={"outage": False, "reject_keys": []}).raise_for_status()
            _wait_delivered(runtime, consumer, 0.0, settle=True)
            stop.set()
            _replay_dead_letters(runtime)
        else:
            # the next night's batch brings the day in, all at once
            sim.at = NIGHT + dt.timedelta(days=1)
            _snapshot(erp_apac, sim.at)
            erp_apac.export(("inventory",))
            for name in STOCK_FLOWS:
                runtime.run_flow(name)
            runtime.run_flow(PLANNING)

        if erp_europe == "tryton":
            global_tryton.read_at_reconciliation(runtime, STOCK_FLOWS, PLANNING)

        # 3. plan and write back ------------------------------------------------------------------------------
        summary = planning.post("/plan", params={"today": sim.at.date().isoformat()}).json()
        run.unsourced = len(summary["unsourced"])
        runtime.run_flow("planned-orders-in")
        run.planned_orders = int(summary["planned"])
        blocked = _block_a_vendor(runtime.store, erp_apac)
        if blocked and hybrid:
            console.print(f"{sim.at:%H:%M} a buyer blocks vendor {blocked} in the legacy ERP: its import refuses "
                          "the orders from it")
        for flow in WRITE_BACK.values():
            runtime.run_flow(flow)
        erp_apac.import_orders()  # the legacy ERP's import job books the order files dropped meanwhile
        # everything sent again, as after a lost answer: created once all the same
        resent = {flow: send_again(runtime, flow) for flow in WRITE_BACK.values()}
        erp_apac.import_orders()
        run.waiting = waiting_orders(runtime.store, WRITE_BACK.values())
        if run.waiting:  # a planner looks at the first exception and approves it (`syncfabric plan approve`)
            from syncfabric.flows.write_back import approve

            flow, key, _ = run.waiting[0]
            if approve(runtime, flow, [key], actor="planner").delivered:
                run.planner_approved.append(key)
            erp_apac.import_orders()
            run.waiting = waiting_orders(runtime.store, WRITE_BACK.values())
        if blocked:
            _refusals_and_fix(runtime, run, erp_apac, blocked)
        run.orders = orders_booked(runtime.store, sap, erp_eu, erp_apac)
        if erp_europe == "tryton":
            run.europe = global_tryton.booked(runtime, systems.apps["erp-eu"],  # type: ignore[arg-type]
                                              resent=resent[global_tryton.WRITE_BACK])
            run.orders["ERP Europe", "purchase"] = run.europe.documents["purchase.purchase"]
            run.orders["ERP Europe", "production"] = run.europe.documents["production"]
        run.purchase_orders = run.orders["ERP North America (SAP)", "purchase"]
        run.approved = sum(run.orders.values())

        # 4. measure ----------------------------------------------------------------------------------------
        reconcile(runtime, "inventory")
        run.completeness = next((c.completeness for c in completeness(runtime.store) if c.domain == "inventory"),
                                None)
        run.latencies = _latencies(runtime, sim.at)
        for entry in runtime.store.quarantine():
            run.quarantined[f"{entry.system}: {_reason(entry.reasons[0])}"] += 1
        run.dead_letters = len(runtime.store.dead_letters(flow=PLANNING, status=None))
        run.open_dead_letters = len(runtime.store.dead_letters(flow=PLANNING))
        run.events_emitted = sum(mes.emitted.values()) + sum(partners.emitted.values())
        run.malformed_sent = mes_faults.malformed_sent
        run.throttled = systems.apps["erp-eu"].state.faults.injected  # type: ignore[attr-defined]
        run.fallbacks = sum(1 for alert in runtime.store.alerts(PLANNING, limit=100) if alert.kind == "fallback")
        run.events = sum(runtime.store.count(entity) for entity in (*mes.emitted, *partners.emitted))
        if keep_running:
            console.print("The simulated systems keep running; Ctrl-C to stop.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return run


APAC_WRITE_BACK = WRITE_BACK["ERP Asia-Pacific (legacy)"]


def _block_a_vendor(store: Store, erp_apac: LegacyErp) -> str | None:
    """The fault of the write-back: the vendor of the first Asia-Pacific buy order is blocked in the legacy ERP
    before its import runs; returns the vendor (None when the plan buys nothing there)."""
    plants = {code for code, in erp_apac.rows["locations"] if code != "APAC"}
    for row in store.current("planned_order"):
        order = msgspec.json.decode(row.payload or b"{}")
        vendor = order.get("supplier_id")
        if order.get("order_type") == "buy" and order.get("location_id") in plants and vendor:
            erp_apac.block_vendor(str(vendor))
            return str(vendor)
    return None


def _refusals_and_fix(runtime: Runtime, run: PolicyRun, erp_apac: LegacyErp, vendor: str) -> None:
    """The next run of the legacy ERP's write-back reads its import's reject files into dead letters; then the
    fix (the buyer unblocks the vendor) and the replay of those dead letters (``syncfabric replay FLOW
    --dead-letters``), which the next import books."""
    from syncfabric.flows.deadletters import plan, replay_keys
    from syncfabric.flows.write_back import REVIEW

    runtime.run_flow(APAC_WRITE_BACK)
    refused = [letter for letter in runtime.store.dead_letters(flow=APAC_WRITE_BACK)
               if not letter.reason.startswith(REVIEW) and letter.held_by is None]
    run.import_refusals = [(letter.record_key, letter.reason) for letter in refused]
    erp_apac.block_vendor(vendor, blocked=False)
    with runtime.connector("erp-apac", APAC_WRITE_BACK) as connector:
        replay_keys(runtime.store, connector, plan(runtime.store, refused), actor="demo")
    erp_apac.import_orders()
    run.refusals_replayed = sum(1 for key, _ in run.import_refusals if key in erp_apac.orders)


def send_again(runtime: Runtime, flow: str) -> int:
    """Resend every planned order the flow already delivered (``syncfabric resend``), through the same write;
    how many went out again."""
    from syncfabric.flows.resend import Selection, plan_resend, resend

    spec = runtime.estate.flows[flow]
    with runtime.connector(spec.system, flow) as connector:
        selection = plan_resend(runtime.store, flow, spec.entities, Selection())
        return resend(runtime.store, connector, selection).records_out


def waiting_orders(store: Store, flows: Iterable[str]) -> list[tuple[str, str, str]]:
    """The planned orders waiting for planner review in these flows: (flow, planned order, why)."""
    from syncfabric.flows.write_back import REVIEW, waiting

    chosen = set(flows)
    return sorted((letter.flow, letter.record_key, letter.reason.removeprefix(REVIEW + ": "))
                  for letter in waiting(store) if letter.flow in chosen)


def orders_booked(store: Store, sap: SapState, erp_eu: RestState, erp_apac: LegacyErp) -> Counter[tuple[str, str]]:
    """The documents each ERP holds for the store's planned orders, by (ERP, kind)."""
    planned = {row.key for row in store.current("planned_order")}
    tables = sap.tables
    booked: Counter[tuple[str, str]] = Counter()
    booked["ERP North America (SAP)", "purchase"] = sum(
        1 for po in tables["A_PurchaseOrder"].values() if po.get("CorrespncExternalReference") in planned)
    booked["ERP North America (SAP)", "production"] = sum(  # our id in the key users' custom field
        1 for row in tables.get("A_PlannedOrder", {}).values() if row.get("YY1_PlanningReference") in planned)
    collections = erp_eu.collections
    for kind, collection in (("purchase", "purchase-orders"), ("production", "production-orders")):
        booked["ERP Europe", kind] = sum(1 for row in collections.get(collection, {}).values()
                                         if row.get("REFERENCE") in planned)
    for kind, code in (("purchase", "PO"), ("production", "WO")):
        booked["ERP Asia-Pacific (legacy)", kind] = sum(
            1 for reference, row in erp_apac.orders.items() if reference in planned and row["ORDER_TYPE"] == code)
    return booked


def _start_systems(stack: ExitStack, work: Path, seed: int,
                   erp_europe: str = "sandbox") -> tuple[Systems, dict[str, str], LegacyErp]:
    import socket

    sap = sap_app({SAP_USER: SAP_PASSWORD}, seed=seed)
    sap_state = sap.state.sap
    products = sorted(key[0] for key in sap_state.tables["A_Product"])
    shared = [f"{100 + index}{200 + index}" for index in range(24)]
    if erp_europe == "tryton":
        eu = stack.enter_context(global_tryton.tryton_europe(shared, shared[::4], seed=seed, now=NIGHT))
    else:
        eu = create_erp_europe(shared, shared[::4], seed=seed, token=TOKEN, now=NIGHT)
    portal = rest_app(token=TOKEN)
    suppliers = sorted(key[0] for key in sap_state.tables["A_Supplier"])
    pick = random.Random(seed)
    portal.state.rest.upsert("terms", [
        {"id": f"{product}/{plant}", "item": product, "plant": plant, "supplier": pick.choice(suppliers),
         "lead_days": pick.randint(3, 20)}
        for product, plant in sorted(sap_state.tables["A_ProductPlant"]) if product in products
        and product.startswith("RM")])
    urls = {name: stack.enter_context(serve(app)) for name, app in
            (("planning", planning_app(token=TOKEN)), ("erp-eu", eu), ("portal", portal), ("sap", sap))}
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
    systems = Systems(urls["planning"], urls["erp-eu"], urls["portal"], urls["sap"],
                      {"erp-eu": eu, "portal": portal, "sap": sap}, ports[0], ports[1], sap_state)
    environ = {
        "PLANNING_TOKEN": TOKEN, "ERP_EU_TOKEN": TOKEN, "PORTAL_TOKEN": TOKEN, "S4_USER": SAP_USER,
        "S4_PASSWORD": SAP_PASSWORD, "MES_WEBHOOK_SECRET": TOKEN, "PARTNERS_WEBHOOK_SECRET": TOKEN,
        "SYNCFABRIC__SYSTEMS__PLANNING__CONNECTION__BASE_URL": systems.planning,
        "SYNCFABRIC__SYSTEMS__ERP_EU__CONNECTION__BASE_URL": systems.erp_eu,
        "SYNCFABRIC__SYSTEMS__SUPPLIER_PORTAL__CONNECTION__BASE_URL": systems.portal,
        "SYNCFABRIC__SYSTEMS__ERP_NA__CONNECTION__BASE_URL": systems.sap,
        "SYNCFABRIC__SYSTEMS__PLANT_MES__CONNECTION__PORT": str(systems.mes_port),
        "SYNCFABRIC__SYSTEMS__PARTNERS__CONNECTION__PORT": str(systems.partners_port),
    }
    if erp_europe == "tryton":
        environ = global_tryton.environ(environ, eu, systems.erp_eu)
        systems.erp_eu_kind = f"Tryton (JSON-RPC; trytond {eu.state.tryton.server.url})"
    erp_apac = LegacyErp(work / "drop" / "erp-apac", seed=seed, item_count=40, sourcing=True, structures=True,
                         last_transactions=True)
    reference = work / "drop" / "reference"
    reference.mkdir(parents=True, exist_ok=True)
    (reference / "locations_20261103.csv").write_text(PLANT_DIRECTORY, encoding="utf-8")
    return systems, environ, erp_apac


def _snapshot(erp: LegacyErp, moment: dt.datetime) -> None:
    """The legacy ERP's export is a snapshot: every balance in it is as of the export time."""
    erp.clock = moment
    for row in erp.rows["inventory"].values():
        row["SNAPSHOT_UTC"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _demo_estate(text: str) -> str:
    start = text.index("    delivery:\n")
    end = text.index("\n  #", start)
    return text[:start] + FAST_DELIVERY.rstrip("\n") + text[end:]


def _wait_delivered(runtime: Runtime, consumer: StreamConsumer | None, pause: float, *, settle: bool = False) -> None:
    """Give the consumer ``pause`` seconds (at least until it caught up, when ``settle``)."""
    ends = time.monotonic() + pause
    limit = time.monotonic() + 60
    store = runtime.store
    while time.monotonic() < limit:
        caught_up = consumer is None or store.checkpoint(PLANNING) == str(store.head())
        if time.monotonic() >= ends and (caught_up or not settle):
            return
        time.sleep(0.02)


def _wait_ingested(listener: Listener, emitter: Emitter, timeout: float = 30.0) -> None:
    """Until the MES flows took every message the emitter sent (a webhook answers once stored; MQTT does not)."""
    flows = [name for name in EVENT_FLOWS if name in ("completions-in", "movements-in", "downtime-in",
                                                      "quality-holds-in")]
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        received = sum(result.received for name, result in listener.results.items() if name in flows)
        if received >= emitter.delivery.sent:
            return
        time.sleep(0.05)


def _replay_dead_letters(runtime: Runtime) -> None:
    from syncfabric.flows.deadletters import plan, replay_keys

    entries = runtime.store.dead_letters(flow=PLANNING)
    if entries:
        with runtime.connector("planning") as connector:
            replay_keys(runtime.store, connector, plan(runtime.store, entries), actor="demo")


def _sample(run: PolicyRun, runtime: Runtime, now: dt.datetime) -> None:
    for stat in freshness(runtime.store, flow=PLANNING, entity="inventory_balance", now=now):
        if stat.group in PLANTS:
            run.ages.append(stat.age_seconds)


def _latencies(runtime: Runtime, now: dt.datetime) -> list[float]:
    """From each change at its source to the platform's first confirmation of it, for the balances whose source
    says when they changed (a snapshot stamped with its read time would show the delivery alone, whatever the
    policy)."""
    return [seconds for group, seconds in change_latencies(runtime.store, flow=PLANNING, entity="inventory_balance",
                                                             since=DAY_START, until=now) if group in PLANTS]


def _reason(text: str) -> str:
    return text.split(" @ ")[0][:70]


def comparison_table(results: dict[str, PolicyRun]) -> Table:
    hybrid, batch = results["hybrid"], results["batch-only"]
    table = Table("measured by syncfabric.observe", "hybrid", "batch only",
                  title="The same day, two policies: inventory at the planning platform (4 plants)")

    def age(values: list[float], share: float | None) -> str:
        value = max(values) if share is None and values else percentile(values, share or 0.5)
        return _duration(value)

    for label, share in (("inventory age p50", 0.5), ("inventory age p95", 0.95), ("inventory age max", None)):
        table.add_row(label, age(hybrid.ages, share), age(batch.ages, share))
    table.add_row("latency p50 / p95, change at the source → platform",
                  *(f"{_duration(percentile(r.latencies, 0.5))} / {_duration(percentile(r.latencies, 0.95))}"
                    for r in (hybrid, batch)))
    table.add_row("completeness after reconciliation", *(f"{r.completeness:.0%}" if r.completeness is not None
                                                         else "—" for r in (hybrid, batch)))
    table.add_row("events processed", f"{hybrid.events:,}", f"{batch.events:,}")
    reasons = sorted(set(hybrid.quarantined) | set(batch.quarantined))
    table.add_row("records quarantined", *("\n".join(f"{r.quarantined[reason]} {reason}" for reason in reasons
                                                     if r.quarantined[reason]) or "0" for r in (hybrid, batch)))
    table.add_row("dead letters (replayed after the fix)", str(hybrid.dead_letters), str(batch.dead_letters))
    table.add_row("fallbacks to batch catch-up", str(hybrid.fallbacks), str(batch.fallbacks))
    table.add_row("legacy import refusals → dead letters (replayed, booked)",
                  *(f"{len(r.import_refusals)} ({r.refusals_replayed})" for r in (hybrid, batch)))
    table.add_row("planned orders → ERP orders (waiting for review)",
                  *(f"{r.planned_orders} → {r.approved} ({len(r.waiting)})" for r in (hybrid, batch)))
    if hybrid.europe is not None and batch.europe is not None:
        table.add_row("planned orders for Munich → Tryton documents (sent twice)",
                      *(global_tryton.documents_cell(r) for r in (hybrid.europe, batch.europe)))
    return table


def orders_table(run: PolicyRun) -> Table:
    """Documents each regional ERP holds for the day's planned orders, by kind; every order was sent twice."""
    approved = f"; approved by the planner: {', '.join(run.planner_approved)}" if run.planner_approved else ""
    table = Table("ERP", "purchase orders", "production orders", "waiting for review",
                  title=f"{run.name}: planned orders written back (each sent twice, created once{approved})")
    waiting = Counter(flow for flow, _, _ in run.waiting)
    for erp, flow in WRITE_BACK.items():
        table.add_row(erp, str(run.orders[erp, "purchase"]), str(run.orders[erp, "production"]), str(waiting[flow]))
    return table


def review_table(run: PolicyRun, limit: int = 8) -> Table:
    table = Table("flow", "planned order", "waits because",
                  title=f"{run.name}: waiting for planner review (`syncfabric plan review`, `plan approve`)")
    for flow, key, why in run.waiting[:limit]:
        table.add_row(flow, key, why)
    if len(run.waiting) > limit:
        table.add_row("…", f"{len(run.waiting) - limit} more", "")
    return table


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _estate_panel(systems: Systems, estate_file: Path, mes_line: str) -> Panel:
    return Panel.fit(
        f"estate             {estate_file}\n"
        f"ERP North America  SAP S/4HANA OData emulator  {systems.sap}\n"
        f"ERP Europe         {systems.erp_eu_kind}  {systems.erp_eu}\n"
        f"ERP Asia-Pacific   legacy CSV drop folder\n"
        f"plant MES x{len(PLANTS)}       {mes_line}\n"
        f"logistics, suppliers  signed webhooks → 127.0.0.1:{systems.partners_port}; portal {systems.portal}\n"
        f"planning platform  {systems.planning}",
        title="syncfabric demo: the global manufacturer")


@contextmanager
def _progress(console: Console) -> Iterator[Progress]:
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} ticks"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        yield progress


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """The demo narrates the faults it injects and tables what followed; the flows' per-batch warnings (every parked
    change behind a dead letter, every refused duplicate) would drown that, so only errors are logged meanwhile."""
    logger = logging.getLogger("syncfabric")
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


@contextmanager
def _workdir(folder: Path | None) -> Iterator[Path]:
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="syncfabric-demo-") as temp:
        yield Path(temp)

