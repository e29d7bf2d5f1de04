"""Webhook ingest over real HTTP on 127.0.0.1: signatures, replay window, answers only after the commit."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syncfabric.config import load_estate
from syncfabric.connectors.webhook.configuration import WebhookConfig
from syncfabric.connectors.webhook.exceptions import DeliveryRefused
from syncfabric.connectors.webhook.signature import Verifier, sign
from syncfabric.errors import ConfigError
from syncfabric.flows.listen import Listener
from syncfabric.flows.runtime import Runtime
from syncfabric.store import open_store
from tests.events.support import SECRET, Hub, PlantEstate, milestone, wait_for
from tests.servers.common import free_port


class Endpoint:
    def __init__(self, estate: PlantEstate, listener: Listener, port: int) -> None:
        self.estate, self.listener = estate, listener
        self.base = f"http://127.0.0.1:{port}/events"

    def post(self, path: str, body: bytes, *, secret: str = SECRET, timestamp: float | None = None,
             signature: str | None = None) -> httpx.Response:
        stamp = str(int(time.time() if timestamp is None else timestamp))
        headers = {"X-Syncfabric-Timestamp": stamp, "Content-Type": "application/json",
                   "X-Syncfabric-Signature": signature or sign(secret, stamp, body)}
        return httpx.post(f"{self.base}/{path}", content=body, headers=headers, timeout=10)


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[Endpoint]:
    port = free_port()
    estate = PlantEstate(tmp_path, webhook_port=port)
    with Runtime(load_estate(estate.path, environ=estate.environ)) as runtime:
        listener = Listener(runtime, ["milestones-in", "supplier-delays-in"])
        listener.start()
        try:
            yield Endpoint(estate, listener, port)
        finally:
            listener.stop()
            listener.join()
    assert not listener.errors


def test_a_signed_event_is_answered_200_only_once_it_is_in_the_store(endpoint: Endpoint) -> None:
    response = endpoint.post("shipment-milestones", json.dumps(milestone(1)).encode())
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "stored"}
    with open_store(endpoint.estate.store_url) as store:  # another connection: only committed data is visible
        row = store.get("shipment_milestone", "SH-00001|departed|2026-03-02T08:00:00+00:00")
        assert row is not None and json.loads(row.payload or b"{}")["place"] == "DEHAM"


def test_a_bad_signature_gets_401_is_logged_and_never_processed(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps(milestone(2)).encode()
    with caplog.at_level(logging.WARNING, logger="syncfabric.webhook"):
        wrong_secret = endpoint.post("shipment-milestones", body, secret="guessed")
        unsigned = httpx.post(f"{endpoint.base}/shipment-milestones", content=body, timeout=10)
        tampered = endpoint.post("shipment-milestones", body.replace(b"departed", b"delivered"),
                                 signature=sign(SECRET, int(time.time()), body))
    assert [r.status_code for r in (wrong_secret, unsigned, tampered)] == [401, 401, 401]
    assert "signature does not match" in wrong_secret.json()["detail"]
    assert "missing signature header X-Syncfabric-Signature" in unsigned.json()["detail"]
    refused = [record.getMessage() for record in caplog.records if "refused" in record.getMessage()]
    assert len(refused) == 3
    assert all("POST /events/shipment-milestones" in message for message in refused)
    with open_store(endpoint.estate.store_url) as store:
        assert store.count("shipment_milestone") == 0
        assert store.quarantine() == []


def test_stale_and_replayed_deliveries_are_refused(endpoint: Endpoint) -> None:
    body = json.dumps(milestone(3)).encode()
    stale = endpoint.post("shipment-milestones", body, timestamp=time.time() - 3600)
    assert stale.status_code == 401 and "stale delivery" in stale.json()["detail"]
    stamp = str(int(time.time()))
    headers = {"X-Syncfabric-Timestamp": stamp, "X-Syncfabric-Signature": sign(SECRET, stamp, body)}
    first = httpx.post(f"{endpoint.base}/shipment-milestones", content=body, headers=headers, timeout=10)
    replayed = httpx.post(f"{endpoint.base}/shipment-milestones", content=body, headers=headers, timeout=10)
    assert first.status_code == 200
    assert replayed.status_code == 409 and "already received" in replayed.json()["detail"]


def test_an_event_that_does_not_match_its_schema_is_quarantined_with_reason_and_path(endpoint: Endpoint) -> None:
    bad = endpoint.post("shipment-milestones", json.dumps(milestone(4, milestone="teleported")).encode())
    not_json = endpoint.post("supplier-delays", b"<delay/>")
    good = endpoint.post("shipment-milestones", json.dumps(milestone(5)).encode())
    assert bad.status_code == 202 and bad.json()["status"] == "quarantined"
    assert any("@ $.milestone" in reason and "teleported" in reason for reason in bad.json()["reasons"])
    assert not_json.status_code == 202 and not_json.json()["reasons"][0].startswith("body is not JSON")
    assert good.status_code == 200
    with open_store(endpoint.estate.store_url) as store:
        entries = {entry.flow: entry for entry in store.quarantine()}
        assert set(entries) == {"milestones-in", "supplier-delays-in"}
        assert entries["milestones-in"].location.startswith("POST /events/shipment-milestones from 127.0.0.1")
        assert json.loads(entries["milestones-in"].payload)["milestone"] == "teleported"
        assert entries["supplier-delays-in"].payload == "<delay/>"
        assert store.count("shipment_milestone") == 1


def test_concurrent_deliveries_share_commits(endpoint: Endpoint) -> None:
    async def deliver_all() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            async def one(number: int) -> int:
                body = json.dumps(milestone(100 + number)).encode()
                stamp = str(int(time.time()))
                headers = {"X-Syncfabric-Timestamp": stamp, "X-Syncfabric-Signature": sign(SECRET, stamp, body)}
                response = await client.post(f"{endpoint.base}/shipment-milestones", content=body, headers=headers)
                return response.status_code
            return await asyncio.gather(*(one(n) for n in range(200)))

    statuses = asyncio.run(deliver_all())
    assert statuses == [200] * 200
    result = endpoint.listener.results["milestones-in"]
    assert result.received == 200 and result.inserted == 200
    assert result.batches < 200  # group commit: one transaction served several deliveries


def test_nothing_listens_on_an_unknown_path(endpoint: Endpoint) -> None:
    response = endpoint.post("elsewhere", b"{}")
    assert response.status_code == 404
    assert endpoint.post("shipment-milestones/deeper", b"{}").status_code == 404
    assert httpx.get(f"{endpoint.base}/shipment-milestones", timeout=10).status_code == 405


def test_a_body_over_the_limit_is_refused_413_while_it_is_read(endpoint: Endpoint) -> None:
    limit = WebhookConfig().max_body_bytes
    body = json.dumps([milestone(n) for n in range(limit // 100)]).encode()
    assert len(body) > limit

    def chunks() -> Iterator[bytes]:  # sent in pieces, without a length: the endpoint counts as it reads
        for start in range(0, len(body), 65_536):
            yield body[start:start + 65_536]

    stamp = str(int(time.time()))
    response = httpx.post(f"{endpoint.base}/shipment-milestones", content=chunks(), timeout=10, headers={
        "X-Syncfabric-Timestamp": stamp, "X-Syncfabric-Signature": sign(SECRET, stamp, body)})
    assert response.status_code == 413 and "max_body_bytes" in response.json()["detail"]
    assert endpoint.listener.results["milestones-in"].received == 0


def test_a_webhook_without_its_secret_does_not_start(tmp_path: Path) -> None:
    estate = PlantEstate(tmp_path, webhook_port=free_port())
    environ = {key: value for key, value in estate.environ.items() if key != "LOGISTICS_WEBHOOK_SECRET"}
    with Runtime(load_estate(estate.path, environ=environ)) as runtime:
        listener = Listener(runtime, ["milestones-in"])
        with pytest.raises(ConfigError, match="LOGISTICS_WEBHOOK_SECRET"):
            listener.start()


def test_verifier_accepts_the_sha256_prefix_or_bare_hex_and_forgets_unstored_deliveries() -> None:
    now = 1_800_000_000.0
    verifier = Verifier("k", signature_header="S", timestamp_header="T", tolerance=60, clock=lambda: now)
    body = b'{"a": 1}'
    signed = sign("k", int(now), body)
    seen = verifier.verify({"S": signed, "T": str(int(now))}, body)
    verifier.forget(seen)
    assert verifier.verify({"S": signed.removeprefix("sha256="), "T": str(int(now))}, body) == seen


def test_a_signature_is_refused_as_replayed_until_its_window_has_passed() -> None:
    clock = [1_800_000_000.0]
    verifier = Verifier("k", signature_header="S", timestamp_header="T", tolerance=60, clock=lambda: clock[0])
    sent = int(clock[0])
    headers = {"S": sign("k", sent, b"{}"), "T": str(sent)}
    verifier.verify(headers, b"{}")
    clock[0] += 59
    with pytest.raises(DeliveryRefused) as replayed:
        verifier.verify(headers, b"{}")
    assert replayed.value.status == 409
    for later in range(10):  # others arriving meanwhile, each seen once
        body = f"[{later}]".encode()
        verifier.verify({"S": sign("k", sent + 59, body), "T": str(sent + 59)}, body)
    clock[0] += 2  # the first one left the window: now stale rather than replayed
    with pytest.raises(DeliveryRefused) as stale:
        verifier.verify(headers, b"{}")
    assert stale.value.status == 401 and "stale" in stale.value.reason
    verifier.verify({"S": sign("k", sent + 61, b"{}"), "T": str(sent + 61)}, b"{}")
    assert len(verifier._seen) == 11  # the ten others and the new one: what left the window is forgotten


@pytest.mark.postgres
def test_events_land_in_a_postgresql_store_the_same_way(tmp_path: Path, postgres_schema_url: str) -> None:
    port = free_port()
    estate = PlantEstate(tmp_path, webhook_port=port)
    environ = {**estate.environ, "SYNCFABRIC__STORE": postgres_schema_url}
    with Runtime(load_estate(estate.path, environ=environ)) as runtime:
        listener = Listener(runtime, ["milestones-in"])
        listener.start()
        try:
            endpoint = Endpoint(estate, listener, port)
            good = endpoint.post("shipment-milestones", json.dumps(milestone(7)).encode())
            bad = endpoint.post("shipment-milestones", json.dumps(milestone(8, occurred_at="soon")).encode())
        finally:
            listener.stop()
            listener.join()
        assert (good.status_code, bad.status_code) == (200, 202)
        assert runtime.store.count("shipment_milestone") == 1
        [entry] = runtime.store.quarantine()
        assert "@ $.occurred_at" in entry.reasons[0]
        assert runtime.store.checkpoint("milestones-in") is not None


def test_killing_the_hub_loses_no_delivery_it_answered(tmp_path: Path) -> None:
    """A logistics platform sends until it gets a 2xx; the hub is killed with SIGKILL in the middle."""
    port = free_port()
    estate = PlantEstate(tmp_path, webhook_port=port)
    total = 100
    answered: list[int] = []
    url = f"http://127.0.0.1:{port}/events/shipment-milestones"

    def logistics_platform() -> None:
        with httpx.Client(timeout=5) as client:
            for number in range(total):
                body = json.dumps(milestone(number)).encode()
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    stamp = str(int(time.time()))
                    try:
                        response = client.post(url, content=body, headers={
                            "X-Syncfabric-Timestamp": stamp, "X-Syncfabric-Signature": sign(SECRET, stamp, body)})
                    except httpx.TransportError:
                        time.sleep(0.05)  # the hub is down: keep the event and send it again
                        continue
                    if response.status_code == 200:
                        answered.append(number)
                        break
                    time.sleep(1.1)  # 409 (same second, same signature) or 503: sign anew and send again

    hub = Hub(estate, "milestones-in")
    hub.wait_listening()
    sender = threading.Thread(target=logistics_platform)
    sender.start()
    with open_store(estate.store_url) as store:
        assert wait_for(lambda: len(answered) >= 30, interval=0.01), hub.stop()
        hub.kill()
        at_kill = list(answered)
        # Everything answered 200 before the kill is in the store.
        for number in at_kill:
            assert store.get("shipment_milestone", f"SH-{number:05d}|departed|2026-03-02T08:00:00+00:00")
        hub = Hub(estate, "milestones-in")
        hub.wait_listening()
        sender.join()
        output = hub.stop()
        assert answered == list(range(total)), output
        assert store.count("shipment_milestone") == total
        assert len(store.changes(0, entities=["shipment_milestone"], limit=1000)) == total


def test_a_delivery_may_carry_an_array_of_events_answered_once_all_are_committed(endpoint: Endpoint) -> None:
    events = [milestone(200 + number) for number in range(50)]
    stored = endpoint.post("shipment-milestones", json.dumps(events).encode())
    assert stored.status_code == 200 and stored.json() == {"status": "stored", "events": 50}
    empty = endpoint.post("shipment-milestones", b"[]")
    assert empty.status_code == 200 and empty.json() == {"status": "stored", "events": 0}
    mixed = [milestone(300), milestone(301, milestone="lost"), 7]
    partly = endpoint.post("shipment-milestones", json.dumps(mixed).encode())
    assert partly.status_code == 202
    answer = partly.json()
    assert answer["status"] == "partly quarantined" and answer["events"] == 3
    assert [entry["index"] for entry in answer["quarantined"]] == [1, 2]
    assert "@ $.milestone" in answer["quarantined"][0]["reasons"][0]
    assert answer["quarantined"][1]["reasons"] == ["event must be a JSON object, got int @ $[2]"]
    with open_store(endpoint.estate.store_url) as store:
        assert store.count("shipment_milestone") == 51
        locations = sorted(entry.location for entry in store.quarantine())
        assert locations[0].endswith("[1]") and locations[1].endswith("[2]")


def test_an_array_split_over_several_commits_is_answered_once_its_last_event_is_committed(tmp_path: Path) -> None:
    """Batches of 7 commit a 50-event delivery in pieces; the answer waits for the last piece, and tells of an
    element refused in any piece by its index."""
    from syncfabric.flows.listen import listen_flow

    port = free_port()
    estate = PlantEstate(tmp_path, webhook_port=port)
    with Runtime(load_estate(estate.path, environ=estate.environ)) as runtime:
        flow = runtime.estate.flows["milestones-in"]
        connector = runtime.connector(flow.system)
        connector.open()
        stop, ready = threading.Event(), threading.Event()
        commits: list[int] = []
        field_map = runtime.field_map(flow.mapping or "")
        worker = threading.Thread(target=listen_flow, kwargs={
            "store": runtime.store, "flow_name": "milestones-in", "connector": connector, "field_map": field_map,
            "source": "shipment-milestones", "stop": stop, "batch_size": 7, "on_ready": ready.set,
            "on_batch": lambda result: commits.append(result.changed)})
        worker.start()
        try:
            assert ready.wait(10)
            response = Endpoint(estate, None, port).post(  # type: ignore[arg-type]
                "shipment-milestones", json.dumps([milestone(400 + n) for n in range(50)]).encode())
            assert response.status_code == 200 and response.json() == {"status": "stored", "events": 50}
            with open_store(estate.store_url) as store:
                assert store.count("shipment_milestone") == 50  # all of them committed before the answer
            steps = [after - before for before, after in itertools.pairwise([0, *commits])]  # running totals
            assert all(0 < step <= 7 for step in steps) and sum(steps) == 50, steps  # batches of at most 7
            mixed: list[object] = [milestone(500 + n) for n in range(12)]
            mixed[3], mixed[9] = "departed", milestone(509, milestone="lost")  # in the first piece, in the second
            partly = Endpoint(estate, None, port).post(  # type: ignore[arg-type]
                "shipment-milestones", json.dumps(mixed).encode())
            assert partly.status_code == 202 and partly.json()["events"] == 12
            assert [entry["index"] for entry in partly.json()["quarantined"]] == [3, 9]
            with open_store(estate.store_url) as store:
                assert store.count("shipment_milestone") == 60
                assert sorted(entry.location[-4:] for entry in store.quarantine()) == [" [3]", " [9]"]
        finally:
            stop.set()
            worker.join(10)
            connector.close()


def test_a_post_that_arrives_as_the_server_starts_finds_its_flow(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The server may answer before the flow's subscription returns: its inbox is there from the first request."""
    from syncfabric.connectors.webhook.connector import WebhookConnector

    port = free_port()
    estate = PlantEstate(tmp_path, webhook_port=port)
    first: list[int] = []
    listen = WebhookConnector._listen

    def listen_then_post(self: WebhookConnector) -> None:
        listen(self)
        if not first:  # unsigned: refused by the flow's check, which a 404 would never reach
            first.append(httpx.post(f"http://127.0.0.1:{port}/events/shipment-milestones", content=b"{}").status_code)

    monkeypatch.setattr(WebhookConnector, "_listen", listen_then_post)
    with Runtime(load_estate(estate.path, environ=estate.environ)) as runtime:
        listener = Listener(runtime, ["milestones-in"])
        listener.start()
        listener.stop()
        listener.join()
    assert first == [401]
