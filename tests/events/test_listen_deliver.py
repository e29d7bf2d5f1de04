"""`syncfabric listen --deliver`: signed webhooks in, stored, and delivered to an HTTP target by the same process."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
from fastapi import FastAPI, Request
from typer.testing import CliRunner

from syncfabric.cli import app
from syncfabric.connectors.webhook.signature import sign
from syncfabric.sandbox.server import serve
from syncfabric.store import open_store
from tests.events.support import SECRET, Hub, milestone, wait_for
from tests.servers.common import free_port

runner = CliRunner()

ESTATE = """\
version: 1
name: listen-and-deliver
store: sqlite:///{folder}/store.db
systems:
  logistics:
    kind: webhook
    connection: {{host: 127.0.0.1, port: {port}}}
    credentials: {{secret: {{env: LOGISTICS_WEBHOOK_SECRET}}}}
  tracker:
    kind: rest
    connection: {{base_url: "{target}", targets: {{shipment_milestone: {{path: /milestones, key: id}}}}}}
domains:
  milestones: {{entity: shipment_milestone, sync_model: event}}
mappings:
  logistics-milestones:
    system: logistics
    entity: shipment_milestone
    fields: {{shipment_id: shipment_id, milestone: milestone, occurred_at: occurred_at, place: place,
              carrier: carrier, detail: detail}}
  milestones-to-tracker:
    system: tracker
    entity: shipment_milestone
    direction: outbound
    fields: {{id: shipment_id, milestone: milestone, detail: detail}}
flows:
  milestones-in:
    direction: inbound
    system: logistics
    entities: [shipment_milestone]
    source: shipment-milestones
    mapping: logistics-milestones
  milestones-out:
    direction: outbound
    system: tracker
    entities: [shipment_milestone]
    mode: changes
    mapping: milestones-to-tracker
  milestones-snapshot:
    direction: outbound
    system: tracker
    entities: [shipment_milestone]
    mode: full
    mapping: milestones-to-tracker
"""


def tracker() -> tuple[FastAPI, list[tuple[str, str]]]:
    """A shipment tracker that notes every PUT it is sent, in the order they arrive."""
    received: list[tuple[str, str]] = []
    api = FastAPI()

    @api.put("/milestones/{ident}")
    async def put(ident: str, request: Request) -> dict[str, str]:
        received.append((ident, json.loads(await request.body())["detail"]))
        return {"status": "ok"}

    return api, received


def estate_in(folder: Path, target: str) -> SimpleNamespace:
    port = free_port()
    path = folder / "estate.yaml"
    path.write_text(ESTATE.format(folder=folder, port=port, target=target))
    return SimpleNamespace(folder=folder, path=path, environ={"LOGISTICS_WEBHOOK_SECRET": SECRET},
                           url=f"http://127.0.0.1:{port}/events/shipment-milestones",
                           store_url=f"sqlite:///{folder}/store.db")


def post(url: str, events: list[dict[str, object]]) -> None:
    body = json.dumps(events).encode()
    stamp = str(int(time.time()))
    response = httpx.post(url, content=body, timeout=10, headers={
        "X-Syncfabric-Timestamp": stamp, "X-Syncfabric-Signature": sign(SECRET, stamp, body)})
    assert response.status_code == 200, response.text


def test_one_process_ingests_and_delivers_each_event_once_in_per_key_order(tmp_path: Path) -> None:
    api, received = tracker()
    keys, rounds = 12, 4
    with serve(api) as target:
        estate = estate_in(tmp_path, target)
        hub = Hub(estate, "milestones-in", "--deliver", "milestones-out")  # type: ignore[arg-type]
        try:
            hub.wait_listening()
            for version in range(1, rounds + 1):  # each round updates every key; sent once the last one arrived
                post(estate.url, [milestone(n, detail=f"v{version}") for n in range(keys)])
                assert wait_for(lambda v=version: sum(1 for _, d in received if d == f"v{v}") >= keys, 30), \
                    f"round {version} did not reach the target: {received}"
            with open_store(estate.store_url) as store:
                assert wait_for(lambda: store.checkpoint("milestones-out") == str(store.head()))
        finally:
            output = hub.stop()
    assert hub.process.returncode == 0, output
    by_key: dict[str, list[str]] = {}
    for ident, detail in received:
        by_key.setdefault(ident, []).append(detail)
    assert by_key == {f"SH-{n:05d}": [f"v{v}" for v in range(1, rounds + 1)] for n in range(keys)}
    assert "delivering: milestones-out" in output
    assert "Listened" in output and "Continuous delivery" in output
    row = next(line for line in output.splitlines() if "milestones-out" in line and "│" in line)
    assert [cell.strip() for cell in row.split("│")[1:5]] == ["milestones-out", "streaming", f"{keys * rounds}",
                                                              f"{keys * rounds}"]
    with open_store(estate.store_url) as store:
        [listened] = store.runs("milestones-in", limit=1)
        [delivered] = store.runs("milestones-out", limit=1)
    assert (listened.status.value, listened.records_in) == ("succeeded", keys * rounds)
    assert (delivered.status.value, delivered.records_out) == ("succeeded", keys * rounds)
    assert delivered.detail["ended_by"] == "stopped" and delivered.detail["dead_lettered"] == 0


def test_deliver_names_flows_that_do_not_stream(tmp_path: Path) -> None:
    estate = estate_in(tmp_path, "http://127.0.0.1:9")
    result = runner.invoke(app, ["listen", "milestones-in", "--deliver", "nope", "--deliver", "milestones-in",
                                 "--deliver", "milestones-snapshot", "--estate", str(estate.path)],
                           env={**os.environ, **estate.environ})
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "--deliver: unknown flow 'nope'; flows that stream: milestones-out" in text
    assert "--deliver: flow 'milestones-in' is inbound" in text
    assert "--deliver: flow 'milestones-snapshot' is outbound in mode full" in text


def test_deliver_all_takes_every_outbound_flow_that_streams(tmp_path: Path) -> None:
    estate = estate_in(tmp_path, "http://127.0.0.1:9")
    result = runner.invoke(app, ["listen", "milestones-in", "--deliver-all", "--for", "0.5",
                                 "--estate", str(estate.path)], env={**os.environ, **estate.environ})
    assert result.exit_code == 0, result.output
    assert "delivering: milestones-out\n" in result.output  # not milestones-snapshot, a flow in mode full
    with open_store(estate.store_url) as store:
        [run] = store.runs("milestones-out", limit=1)
    assert run.detail["ended_by"] == "stopped"
