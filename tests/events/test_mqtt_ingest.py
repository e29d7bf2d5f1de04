"""MQTT ingest against a real mosquitto broker: QoS 1, persistent sessions, acknowledgement after commit."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from syncfabric.config import load_estate
from syncfabric.connectors.base import Acknowledgement, Received
from syncfabric.connectors.mqtt.configuration import MqttConfig
from syncfabric.connectors.mqtt.connector import MqttConnector
from syncfabric.errors import PermanentError, TransientError
from syncfabric.flows.listen import Listener
from syncfabric.flows.runtime import Runtime
from syncfabric.store import open_store
from tests.events.support import Hub, Plant, PlantEstate, downtime, wait_for
from tests.servers.mosquitto import Broker, publish, start_broker

pytestmark = pytest.mark.mosquitto

STORED = Acknowledgement("stored")


def take(subscription, count: int, timeout: float = 15.0) -> list[Received]:
    taken: list[Received] = []
    deadline = time.monotonic() + timeout
    while len(taken) < count and time.monotonic() < deadline:
        taken.extend(next(subscription))
    return taken


def ids(received: list[Received]) -> list[str]:
    return [str(row["event_id"]) for item in received for row in item.rows]


def test_only_acknowledged_messages_leave_the_broker(mosquitto: Broker) -> None:
    connector = MqttConnector("plant", MqttConfig(host=mosquitto.host, port=mosquitto.port,
                                                  client_id=f"t{uuid.uuid4().hex[:8]}"))
    topic = f"{connector.config.client_id}/mfg/machine/down/P100"
    with connector.subscribe(topic, durable="flow", max_wait=0.1) as subscription:
        publish(mosquitto, [(topic, json.dumps(downtime(n)).encode()) for n in range(10)])
        first = take(subscription, 10)
        assert ids(first) == [f"DT-{n:06d}" for n in range(10)]
        for item in first[:4]:
            item.ack(item.first, [STORED])
    # Leaving the subscription sends those PUBACKs: its graceful disconnect is queued behind them on the client's
    # loop, and closing waits for it. The same durable subscription again: the broker delivers the six it never
    # got a PUBACK for, and no others.
    with connector.subscribe(topic, durable="flow", max_wait=0.1) as subscription:
        again = take(subscription, 6)
        assert ids(again) == [f"DT-{n:06d}" for n in range(4, 10)]
        assert all(item.location.startswith(f"mqtt://{mosquitto.host}:{mosquitto.port}/{topic}")
                   for item in again)
        for item in again:
            item.ack(item.first, [STORED])
    with connector.subscribe(topic, durable="flow", poll=0.5) as subscription:
        assert take(subscription, 1, timeout=1.0) == []


def test_messages_larger_than_a_read_and_many_small_ones_arrive_whole(mosquitto: Broker) -> None:
    """The connector reads the socket 64 KiB at a time: a message spanning several reads, and hundreds of small
    ones sharing one, each arrive whole and in order."""
    connector = MqttConnector("plant", MqttConfig(host=mosquitto.host, port=mosquitto.port,
                                                  client_id=f"t{uuid.uuid4().hex[:8]}"))
    topic = f"{connector.config.client_id}/mfg/machine/down/P100"
    events = [downtime(n, description="x" * (200_000 if n % 100 == 50 else n % 7)) for n in range(500)]
    with connector.subscribe(topic, durable="flow", batch_size=1000, max_wait=0.1) as subscription:
        publish(mosquitto, [(topic, json.dumps(event).encode()) for event in events])
        taken = take(subscription, len(events))
        for item in taken:
            item.ack(item.first, [STORED])
    assert [row["description"] for item in taken for row in item.rows] == [event["description"] for event in events]
    assert all(len(item.rows) == 1 and item.problems is None for item in taken)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_members_of_a_shared_subscription_each_get_a_share_and_keep_it(mosquitto: Broker, protocol: str) -> None:
    connector = MqttConnector("plant", MqttConfig(host=mosquitto.host, port=mosquitto.port, protocol=protocol,
                                                  client_id=f"t{uuid.uuid4().hex[:8]}"))
    topic = f"{connector.config.client_id}/mfg/machine/down/P100"
    group = connector.share_group("downtime-in")
    for member in ("w0", "w1"):
        connector.subscribe_shared(topic, group=group, durable=member).close()
    publish(mosquitto, [(topic, json.dumps(downtime(n)).encode()) for n in range(20)])  # both sessions offline
    shares = {}
    for member in ("w0", "w1"):
        with connector.subscribe_shared(topic, group=group, durable=member, max_wait=0.1) as subscription:
            shares[member] = take(subscription, 10)
            for item in shares[member][:5]:
                item.ack(item.first, [STORED])
    assert sorted(ids(shares["w0"]) + ids(shares["w1"])) == [f"DT-{n:06d}" for n in range(20)]
    assert shares["w0"] and shares["w1"]
    # What a member took but did not acknowledge comes to it again; then it is retired: unsubscribed, drained,
    # its session removed, and no share of new messages goes to it.
    with connector.drain_shared(topic, group=group, durable="w1", max_wait=0.1) as subscription:
        again = take(subscription, 5)
        for item in again:
            item.ack(item.first, [STORED])
    assert ids(again) == ids(shares["w1"][5:])
    connector.end_session("w1")
    publish(mosquitto, [(topic, json.dumps(downtime(n)).encode()) for n in range(20, 30)])
    with connector.subscribe_shared(topic, group=group, durable="w0", max_wait=0.1) as subscription:
        rest = take(subscription, 15)
        for item in rest:
            item.ack(item.first, [STORED])
    assert ids(rest) == ids(shares["w0"][5:]) + [f"DT-{n:06d}" for n in range(20, 30)]


def test_connection_test(mosquitto: Broker) -> None:
    MqttConnector("plant", MqttConfig(host=mosquitto.host, port=mosquitto.port)).test_connection()


def test_an_unreachable_broker_is_a_transient_error() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connector = MqttConnector("plant", MqttConfig(host="127.0.0.1", port=port, connect_timeout_seconds=2))
    with pytest.raises(TransientError, match=f"127.0.0.1:{port}"):
        connector.subscribe("mfg/machine/down/+", durable="flow")
    with pytest.raises(TransientError, match=f"127.0.0.1:{port}"):
        connector.test_connection()


def test_a_broker_that_refuses_our_credentials_is_a_permanent_error(mosquitto_binary: str, tmp_path: Path) -> None:
    process, broker = start_broker(mosquitto_binary, tmp_path, anonymous=False)
    try:
        connector = MqttConnector("plant", MqttConfig(host=broker.host, port=broker.port),
                                  {"username": "mes", "password": "wrong"})
        with pytest.raises(PermanentError, match=r"(?i)not authori"):
            connector.subscribe("mfg/machine/down/+", durable="flow")
    finally:
        process.terminate()
        process.wait()


def test_events_published_while_the_hub_is_down_arrive_when_it_is_back(mosquitto: Broker, tmp_path: Path) -> None:
    estate = PlantEstate(tmp_path, mosquitto)
    hub = Hub(estate, "downtime-in")
    hub.wait_listening()  # the first run creates the broker session and its subscription
    assert "Listened" in hub.stop()
    assert hub.process.returncode == 0

    publish(mosquitto, estate.downtime_messages(range(300), "P100")
            + estate.downtime_messages(range(300, 400), "P200"))

    hub = Hub(estate, "downtime-in")
    hub.wait_listening()
    with open_store(estate.store_url) as store:
        assert wait_for(lambda: store.count("machine_downtime") == 400), hub.stop()
        output = hub.stop()
        assert hub.process.returncode == 0, output
        changes = store.changes(0, entities=["machine_downtime"], limit=10_000)
        assert len(changes) == 400
        row = store.get("machine_downtime", "DT-000350")
        assert row is not None and json.loads(row.payload or b"{}")["location_id"] == "P200"
        runs = store.runs("downtime-in")
        assert runs[0].records_in == 400 and runs[0].status.value == "succeeded"


def test_killing_the_hub_while_events_arrive_loses_none(mosquitto: Broker, tmp_path: Path) -> None:
    estate = PlantEstate(tmp_path, mosquitto)
    total = 4000
    hub = Hub(estate, "downtime-in")
    hub.wait_listening()
    plant = Plant(mosquitto, estate, total, first=1000)
    with open_store(estate.store_url) as store:
        assert wait_for(lambda: store.count("machine_downtime") >= 600, interval=0.02), hub.stop()
        hub.kill()  # SIGKILL in the middle of the stream: batches taken but not committed are not acknowledged
        at_kill = store.count("machine_downtime")
        plant.go_on()  # the other 3000 come while the hub is down
        assert at_kill < total
        plant.join()

        hub = Hub(estate, "downtime-in")
        hub.wait_listening()
        # One event more, published now: the broker re-sends what it holds for the session before it, so once it
        # is stored, anything delivered twice has come and been committed.
        publish(mosquitto, estate.downtime_messages(range(total, total + 1), "P9"))
        assert wait_for(lambda: store.get("machine_downtime", f"DT-{total:06d}") is not None), hub.stop()
        output = hub.stop()
        assert hub.process.returncode == 0, output
        changes = store.changes(0, entities=["machine_downtime"], limit=2 * total)
        assert len(changes) == total + 1  # one insert per event: a redelivered event changed nothing
        assert {change.key for change in changes} == {f"DT-{n:06d}" for n in range(total + 1)}
        assert all(change.version == 1 for change in changes)
        assert store.quarantine() == []
        after = store.runs("downtime-in")[0]
        assert after.status.value == "succeeded"
        # What the killed hub had committed but not yet acknowledged came again, and changed nothing.
        assert after.records_in - after.unchanged == total + 1 - at_kill


def test_bad_events_are_quarantined_with_reason_and_path_the_rest_go_through(
    mosquitto: Broker, tmp_path: Path
) -> None:
    estate = PlantEstate(tmp_path, mosquitto)
    hub = Hub(estate, "downtime-in")
    hub.wait_listening()
    topic = estate.downtime_topic("P100")
    publish(mosquitto, [
        (topic, json.dumps(downtime(1)).encode()),
        (topic, b"{not json"),
        (topic, json.dumps(downtime(2, started_at="yesterday")).encode()),
        (topic, json.dumps(downtime(3, ended_at="2026-03-02T05:00:00Z")).encode()),
        (topic, json.dumps(downtime(4)).encode()),
    ])
    with open_store(estate.store_url) as store:
        assert wait_for(lambda: store.count("machine_downtime") == 2 and len(store.quarantine()) == 3), hub.stop()
        hub.stop()
        entries = {entry.record_key: entry for entry in store.quarantine()}
        assert "DT-000002" in entries and "DT-000003" in entries
        assert any("@ $.started_at" in reason and "yesterday" in reason for reason in entries["DT-000002"].reasons)
        assert any("ended_at must not be before started_at" in reason for reason in entries["DT-000003"].reasons)
        broken = entries[""]
        assert broken.reasons[0].startswith("message body is not JSON")
        assert broken.payload == "{not json"
        for entry in entries.values():
            assert entry.location.startswith(f"mqtt://{mosquitto.host}:{mosquitto.port}/{topic} (message ")
        assert store.get("machine_downtime", "DT-000001") is not None
        assert store.get("machine_downtime", "DT-000004") is not None


def test_the_flow_reconnects_when_the_broker_restarts(mosquitto_binary: str, tmp_path: Path) -> None:
    binary = mosquitto_binary
    root = tmp_path / "broker"
    root.mkdir()
    process, broker = start_broker(binary, root)
    estate = PlantEstate(tmp_path, broker)
    try:
        with Runtime(load_estate(estate.path, environ=estate.environ)) as runtime:
            listener = Listener(runtime, ["downtime-in"])
            listener.start()
            try:
                publish(broker, estate.downtime_messages(range(100)))
                assert wait_for(lambda: runtime.store.count("machine_downtime") == 100)
                process.terminate()  # the broker goes away (and saves its sessions)
                process.wait()
                refuse_one_reconnect(broker.port)
                process, broker = start_broker(binary, root, broker.port)
                publish(broker, estate.downtime_messages(range(100, 200)))
                assert wait_for(lambda: runtime.store.count("machine_downtime") == 200), broker.log_tail()
                assert not listener.errors
            finally:
                listener.stop()
                listener.join()
    finally:
        process.terminate()
        process.wait()


def refuse_one_reconnect(port: int, timeout: float = 15.0) -> None:
    """While the broker is down, wait for the client's next attempt to reconnect on its port and drop it, as a
    broker that is not ready would: the flow has then lived through a failed reconnect, not only a lost
    connection."""
    import socket

    with socket.create_server(("127.0.0.1", port)) as stand_in:
        stand_in.settimeout(timeout)
        attempt, _ = stand_in.accept()
        attempt.close()
