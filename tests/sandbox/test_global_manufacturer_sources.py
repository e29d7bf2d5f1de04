"""The simulated systems of the global manufacturer against the example estate, over real HTTP on 127.0.0.1:
the plant MES and the SaaS partners deliver signed webhooks to `listen`, ERP Europe is read by the `rest`
connector through injected 429s."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from syncfabric.config import load_estate
from syncfabric.flows.listen import Listener
from syncfabric.flows.runtime import Runtime
from syncfabric.sandbox.emitter import EmitterFaults, WebhookEmitter
from syncfabric.sandbox.erp_europe import create_erp_europe, eu_code
from syncfabric.sandbox.logistics import LogisticsPartners
from syncfabric.sandbox.mes import PLANTS, PlantMes
from syncfabric.sandbox.server import serve
from tests.servers.common import free_port

EXAMPLE = Path(__file__).parents[2] / "examples" / "global-manufacturer" / "estate.yaml"
ITEMS = ["100200", "100300", "200100", "300100"]
EVENT_FLOWS = ["completions-in", "movements-in", "downtime-in", "quality-holds-in", "milestones-in",
               "confirmations-in", "supplier-delays-in"]
START = dt.datetime(2026, 11, 3, 6, 0, tzinfo=dt.UTC)



def estate_in(folder: Path, **environ: str) -> Runtime:
    shutil.copy(EXAMPLE, folder / "estate.yaml")
    base = {"MES_WEBHOOK_SECRET": "mes-secret", "PARTNERS_WEBHOOK_SECRET": "partners-secret",
            "ERP_EU_TOKEN": "eu-token", "PLANNING_TOKEN": "p", "S4_USER": "u", "S4_PASSWORD": "p"}
    return Runtime(load_estate(folder / "estate.yaml", environ={**base, **environ}))


def test_the_mes_is_seeded_and_reports_all_four_kinds_from_four_plants() -> None:
    first, second = PlantMes(ITEMS, seed=3), PlantMes(ITEMS, seed=3)
    ticks = [START + dt.timedelta(minutes=minute) for minute in range(60)]
    events = [event for moment in ticks for event in first.tick(moment)]
    assert events == [event for moment in ticks for event in second.tick(moment)]
    assert {event.body["location_id"] for event in events if "location_id" in event.body} == set(PLANTS)
    assert set(first.emitted) == {"production_completion", "inventory_movement", "machine_downtime", "quality_hold"}
    assert {event.topic.rsplit("/", 1)[1] for event in events} == set(PLANTS)


def test_events_reach_the_store_once_and_malformed_ones_wait_in_quarantine(tmp_path: Path) -> None:
    mes_port, partners_port = free_port(), free_port()
    runtime = estate_in(tmp_path, SYNCFABRIC__SYSTEMS__PLANT_MES__CONNECTION__PORT=str(mes_port),
                        SYNCFABRIC__SYSTEMS__PARTNERS__CONNECTION__PORT=str(partners_port))
    mes = PlantMes(ITEMS, seed=5)
    partners = LogisticsPartners(PLANTS, ["L-4711", "173000001"], ITEMS, seed=5)
    faults = EmitterFaults(malformed=0.1, duplicate=0.2, out_of_order=0.2)
    with runtime:
        listener = Listener(runtime, EVENT_FLOWS)
        listener.start()
        mes_out = WebhookEmitter(f"http://127.0.0.1:{mes_port}/events", "mes-secret", seed=1, faults=faults)
        partners_out = WebhookEmitter(f"http://127.0.0.1:{partners_port}/events", "partners-secret", seed=2)
        try:
            for minute in range(0, 120, 5):
                moment = START + dt.timedelta(minutes=minute)
                mes_out.emit(mes.tick(moment))
                partners_out.emit(partners.tick(moment))
            mes_out.flush()
            partners_out.flush()
        finally:
            listener.stop()
            listener.join()
            mes_out.close()
            partners_out.close()
        assert not listener.errors
        store = runtime.store
        stored_mes = sum(store.count(entity) for entity in mes.emitted)
        assert faults.malformed_sent > 0 and faults.duplicates_sent > 0 and faults.reordered > 0
        assert stored_mes == sum(mes.emitted.values()) - faults.malformed_sent  # duplicates stored once
        quarantined = store.quarantine()
        assert len(quarantined) == mes_out.delivery.answers["quarantined"]  # a duplicated one is kept twice
        assert len({entry.payload for entry in quarantined}) == faults.malformed_sent
        assert all(entry.system == "plant-mes" and entry.reasons for entry in quarantined)
        assert {entity: store.count(entity) for entity in partners.emitted} == dict(partners.emitted)
        assert partners_out.delivery.answers["stored"] == sum(partners.emitted.values())


def test_erp_europe_is_read_through_429s_in_its_own_codes_and_units(tmp_path: Path) -> None:
    app = create_erp_europe(ITEMS, ["300100"], seed=4, token="eu-token", now=START)
    with serve(app) as url:
        app.state.faults.update(fail_next_n=2, fail_status=429, retry_after=0.1)
        runtime = estate_in(tmp_path, SYNCFABRIC__SYSTEMS__ERP_EU__CONNECTION__BASE_URL=url)
        with runtime:
            items = runtime.run_flow("eu-items-in")
            stock = runtime.run_flow("eu-inventory-in")
            assert app.state.faults.injected == 2
            assert items.records_in == len(ITEMS) and stock.records_in == len(ITEMS)
            assert sorted(row.key for row in runtime.store.current("item")) == sorted(ITEMS)
            balances = {row.key: json.loads(row.payload) for row in runtime.store.current("inventory_balance")}
    source = {row["MATNR"]: row for row in app.state.rest.collections["stock"].values()}
    for item in ITEMS:
        row = source[eu_code(item)]
        balance = next(payload for key, payload in balances.items() if key.startswith(f"{item}|DE-MUC"))
        expected = Decimal(row["LABST"]) * (12 if row["MEINS"] == "KAR" else 1)
        assert Decimal(str(balance["on_hand"]["value"])) == expected and balance["on_hand"]["unit"] == "EA"


@pytest.mark.parametrize("body", [{"quantity": {"value": 3, "unit": "EA"}, "id": "x"}, {"id": "x"}])
def test_a_broken_record_keeps_its_shape_but_not_its_meaning(body: dict) -> None:
    from syncfabric.sandbox.emitter import break_record

    broken = break_record(body)
    assert broken.keys() == body.keys() and broken != body
