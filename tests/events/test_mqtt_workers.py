"""`listen --workers N` against a real mosquitto broker: members of one MQTT v5 shared subscription in worker
processes, a worker killed under load, sessions retired when the count goes down, and per-key order by source
time across workers."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from syncfabric.config import load_estate
from syncfabric.connectors.base import Acknowledgement, Received
from syncfabric.flows.listen import ListenResult, commit_batch
from syncfabric.flows.listen_workers import Layout, next_layout, read_layout
from syncfabric.flows.runtime import Runtime
from syncfabric.store import open_store
from tests.events.support import Hub, Plant, PlantEstate, downtime, wait_for
from tests.servers.mosquitto import Broker, publish


def worker_pids(output: str, flow: str) -> dict[str, int]:
    """The latest pid of each worker the hub reported starting."""
    return {name: int(pid) for name, pid in re.findall(rf"^worker {flow} (w\d+): pid (\d+)$", output, re.M)}


@pytest.mark.mosquitto
def test_a_worker_killed_under_load_loses_no_event(mosquitto: Broker, tmp_path: Path) -> None:
    estate = PlantEstate(tmp_path, mosquitto)
    total = 4000
    hub = Hub(estate, "downtime-in", "--workers", "2")
    hub.wait_listening(60)
    pids = worker_pids("".join(hub.output), "downtime-in")
    assert set(pids) == {"w0", "w1"} and len(set(pids.values())) == 2
    plant = Plant(mosquitto, estate, total, first=1000)
    with open_store(estate.store_url) as store:
        assert wait_for(lambda: store.count("machine_downtime") >= 600, interval=0.02), hub.stop()
        os.kill(pids["w1"], signal.SIGKILL)  # batches it took and had not committed are not acknowledged
        at_kill = store.count("machine_downtime")
        plant.go_on()  # the other 3000 come while w1 is down and being started again
        assert at_kill < total
        assert wait_for(lambda: worker_pids("".join(hub.output), "downtime-in")["w1"] != pids["w1"]), hub.stop()
        plant.join()
        assert wait_for(lambda: store.count("machine_downtime") == total, timeout=60), hub.stop()
        # The flow's earlier single session is retired once it has been quiet for a while.
        assert wait_for(lambda: "retired session downtime-in plain" in "".join(hub.output), timeout=30), hub.stop()
        output = hub.stop()
        assert hub.process.returncode == 0, output
        assert "worker downtime-in w1 (killed by signal 9); starting it again" in output
        changes = store.changes(0, entities=["machine_downtime"], limit=2 * total)
        assert len(changes) == total  # one insert per event: what came twice changed nothing
        assert {change.key for change in changes} == {f"DT-{n:06d}" for n in range(total)}
        assert all(change.version == 1 for change in changes)
        assert store.quarantine() == []
        run = store.runs("downtime-in")[0]
        assert run.status.value == "succeeded"
        assert run.detail["workers"] == 2
        assert run.records_in >= total
        # Both workers stored events: the broker spread the messages across the group.
        assert {change.lineage.batch_id.rsplit("/", 1)[1] for change in changes} == {"w0", "w1"}
        assert read_layout(store, "downtime-in") == Layout(workers=2, retire=[])


@pytest.mark.mosquitto
def test_fewer_workers_retire_the_sessions_left_over_and_keep_their_events(mosquitto: Broker, tmp_path: Path) -> None:
    estate = PlantEstate(tmp_path, mosquitto)
    hub = Hub(estate, "downtime-in", "--workers", "3")
    hub.wait_listening(60)
    output = hub.stop()
    assert hub.process.returncode == 0, output
    # With the hub down the broker shares what is published across the three sessions, and keeps it.
    publish(mosquitto, estate.downtime_messages(range(300)))

    hub = Hub(estate, "downtime-in", "--workers", "1")
    hub.wait_listening(60)
    with open_store(estate.store_url) as store:
        assert wait_for(lambda: store.count("machine_downtime") == 300, timeout=60), hub.stop()
        assert wait_for(lambda: read_layout(store, "downtime-in") == Layout(workers=1, retire=[]),
                        timeout=30), hub.stop()
        output = hub.stop()
        assert "retired session downtime-in w1" in output and "retired session downtime-in w2" in output, output

        # Retired sessions take no share of what comes next; without --workers the recorded count holds.
        publish(mosquitto, estate.downtime_messages(range(300, 400)))
        hub = Hub(estate, "downtime-in")
        hub.wait_listening(60)
        assert wait_for(lambda: store.count("machine_downtime") == 400, timeout=60), hub.stop()
        output = hub.stop()
        assert worker_pids(output, "downtime-in").keys() == {"w0"}, output
        assert len(store.changes(0, entities=["machine_downtime"], limit=1000)) == 400


def test_the_session_layout_retires_what_a_lower_count_leaves() -> None:
    assert next_layout(None, 2) == Layout(workers=2, retire=["plain"])
    assert next_layout(Layout(workers=4, retire=[]), 2) == Layout(workers=2, retire=["w2", "w3"])
    assert next_layout(Layout(workers=2, retire=["w2", "w3"]), 3) == Layout(workers=3, retire=["w3"])
    assert next_layout(Layout(workers=1, retire=["plain"]), 1) == Layout(workers=1, retire=["plain"])


def test_an_older_event_of_a_key_does_not_replace_a_newer_one(tmp_path: Path) -> None:
    """Workers of a shared subscription commit in any order: the store keeps the newest event of each key by its
    source time, whichever committed last, inside a batch and across batches (processes)."""
    estate = PlantEstate(tmp_path)
    acks: list[Acknowledgement] = []

    def received(event: dict[str, object]) -> Received:
        return Received([event], f"mqtt://test/{event['event_id']}", lambda first, outcomes: acks.extend(outcomes))

    newer = downtime(1, occurred_at="2026-03-02T07:00:00Z", ended_at="2026-03-02T06:50:00Z")
    older = downtime(1, occurred_at="2026-03-02T06:15:00Z")
    with Runtime(load_estate(estate.path, environ=estate.environ)) as runtime:
        store = runtime.store
        field_map = runtime.field_map("mes-downtime")
        result = ListenResult(flow="downtime-in", direction="inbound")
        first = commit_batch(store, "downtime-in", field_map, [received(newer)], result)
        second = commit_batch(store, "downtime-in", field_map, [received(older), received(downtime(2))], result)
        assert [a.status for a in first + second] == ["stored", "stored", "stored"]
        assert result.superseded == 1 and result.inserted == 2
        row = store.get("machine_downtime", "DT-000001")
        assert row is not None and row.version == 1
        assert json.loads(row.payload or b"{}")["ended_at"] == "2026-03-02T06:50:00Z"

        # In one batch, either way round, the newer event is what is stored.
        later = downtime(3, occurred_at="2026-03-02T08:00:00Z", description="later")
        earlier = downtime(3, occurred_at="2026-03-02T07:59:59Z", description="earlier")
        commit_batch(store, "downtime-in", field_map, [received(later), received(earlier)], result)
        latest = downtime(4, occurred_at="2026-03-02T08:00:00Z", description="latest")
        commit_batch(store, "downtime-in", field_map, [received(earlier | {"event_id": "DT-000004"}),
                                                       received(latest)], result)
        assert json.loads(store.get("machine_downtime", "DT-000003").payload)["description"] == "later"
        assert json.loads(store.get("machine_downtime", "DT-000004").payload)["description"] == "latest"
        assert result.superseded == 3

        # A newer event does replace an older one, as any change does.
        commit_batch(store, "downtime-in", field_map, [received(later | {"occurred_at": "2026-03-02T09:00:00Z",
                                                                         "description": "newest"})], result)
        row = store.get("machine_downtime", "DT-000003")
        assert row is not None and row.version == 2 and json.loads(row.payload)["description"] == "newest"
        assert result.superseded == 3
        assert result.detail()["superseded"] == 3


def test_a_batch_with_keys_already_stored_is_applied_as_any_change(tmp_path: Path) -> None:
    """A batch of new keys is inserted without a look-up; one that also holds a redelivery, a changed event or a key
    deleted meanwhile is applied key by key: unchanged, a new version, back from deletion."""
    estate = PlantEstate(tmp_path)
    acks: list[Acknowledgement] = []

    def received(event: dict[str, object]) -> Received:
        return Received([event], f"mqtt://test/{event['event_id']}", lambda first, outcomes: acks.extend(outcomes))

    with Runtime(load_estate(estate.path, environ=estate.environ)) as runtime:
        store = runtime.store
        field_map = runtime.field_map("mes-downtime")
        result = ListenResult(flow="downtime-in", direction="inbound")
        commit_batch(store, "downtime-in", field_map, [received(downtime(n)) for n in range(1, 4)], result)
        assert (result.inserted, result.updated, result.unchanged) == (3, 0, 0)
        with store.transaction() as tx:
            tx.delete("machine_downtime", ["DT-000003"])
        again = [received(downtime(1)), received(downtime(2, reason_code="SETUP")), received(downtime(3)),
                 received(downtime(4))]
        statuses = commit_batch(store, "downtime-in", field_map, again, result)
        assert [status.status for status in statuses] == ["stored"] * 4
        assert (result.inserted, result.updated, result.unchanged, result.superseded) == (4, 2, 1, 0)
        versions = {key: row.version for key, row in store.get_many(
            "machine_downtime", [f"DT-00000{n}" for n in range(1, 5)]).items()}
        assert versions == {"DT-000001": 1, "DT-000002": 2, "DT-000003": 3, "DT-000004": 1}
        assert json.loads(store.get("machine_downtime", "DT-000002").payload)["reason_code"] == "SETUP"
        log = store.changes(0, entities=["machine_downtime"], limit=100)
        assert [(change.key, change.version) for change in log][-3:] == [
            ("DT-000002", 2), ("DT-000003", 3), ("DT-000004", 1)]
        assert log[-1].lineage.source_id == "mqtt://test/DT-000004"


@pytest.mark.mosquitto
@pytest.mark.postgres
def test_workers_commit_into_postgresql(mosquitto: Broker, postgres_schema_url: str, tmp_path: Path) -> None:
    estate = PlantEstate(tmp_path, mosquitto)
    estate.environ["SYNCFABRIC__STORE"] = postgres_schema_url
    hub = Hub(estate, "downtime-in", "--workers", "2")
    hub.wait_listening(60)
    publish(mosquitto, estate.downtime_messages(range(1000), "P100") + estate.downtime_messages(range(1000, 2000),
                                                                                                  "P200"))
    with open_store(postgres_schema_url) as store:
        assert wait_for(lambda: store.count("machine_downtime") == 2000, timeout=60), hub.stop()
        output = hub.stop()
        assert hub.process.returncode == 0, output
        changes = store.changes(0, entities=["machine_downtime"], limit=5000)
        assert len(changes) == 2000 and all(change.version == 1 for change in changes)
        assert [change.seq for change in changes] == sorted(change.seq for change in changes)
        assert {change.lineage.batch_id.rsplit("/", 1)[1] for change in changes} == {"w0", "w1"}


@pytest.mark.mosquitto
def test_webhook_flows_named_with_workers_listen_in_the_main_process(mosquitto: Broker, tmp_path: Path) -> None:
    import httpx

    from syncfabric.connectors.webhook.signature import sign
    from tests.events.support import SECRET, milestone
    from tests.servers.common import free_port

    port = free_port()
    estate = PlantEstate(tmp_path, mosquitto, webhook_port=port)
    hub = Hub(estate, "downtime-in", "milestones-in", "--workers", "2")
    hub.wait_listening(60)
    publish(mosquitto, estate.downtime_messages(range(50)))
    body = json.dumps([milestone(n) for n in range(3)]).encode()
    stamp = str(int(time.time()))
    headers = {"X-Syncfabric-Timestamp": stamp, "X-Syncfabric-Signature": sign(SECRET, stamp, body)}
    response = httpx.post(f"http://127.0.0.1:{port}/events/shipment-milestones", content=body, timeout=10,
                          headers=headers)
    assert response.status_code == 200, response.text
    with open_store(estate.store_url) as store:
        assert wait_for(lambda: store.count("machine_downtime") == 50, timeout=60), hub.stop()
        assert store.count("shipment_milestone") == 3
        output = hub.stop()
        assert hub.process.returncode == 0, output
        assert worker_pids(output, "downtime-in").keys() == {"w0", "w1"}
        assert "milestones-in" not in worker_pids(output, "milestones-in")
        rows = {line.split("│")[1].strip(): line for line in output.splitlines() if "│" in line}
        assert [cell.strip() for cell in rows["milestones-in"].split("│")[1:4]] == ["milestones-in", "3", "3"]
        assert [cell.strip() for cell in rows["downtime-in"].split("│")[1:4]] == ["downtime-in", "50", "50"]
        assert {run.flow: run.status.value for run in store.runs()} == {"downtime-in": "succeeded",
                                                                         "milestones-in": "succeeded"}


@pytest.mark.mosquitto
def test_workers_stop_when_listen_is_killed(mosquitto: Broker, tmp_path: Path) -> None:
    estate = PlantEstate(tmp_path, mosquitto)
    hub = Hub(estate, "downtime-in", "--workers", "2")
    hub.wait_listening(60)
    pids = worker_pids("".join(hub.output), "downtime-in")
    hub.kill()  # SIGKILL: no chance to stop its workers

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"

    assert wait_for(lambda: all(gone(pid) for pid in pids.values()), timeout=30)
    # The next listen's workers take the same sessions without a fight, and nothing was lost.
    publish(mosquitto, estate.downtime_messages(range(100)))
    hub = Hub(estate, "downtime-in")
    hub.wait_listening(60)
    with open_store(estate.store_url) as store:
        assert wait_for(lambda: store.count("machine_downtime") == 100, timeout=60), hub.stop()
    output = hub.stop()
    assert "starting it again" not in output, output


def test_workers_need_an_mqtt_flow(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from syncfabric.cli import app

    estate = PlantEstate(tmp_path)
    result = CliRunner().invoke(app, ["listen", "milestones-in", "--workers", "2", "--estate", str(estate.path)],
                                env=estate.environ)
    assert result.exit_code != 0
    assert "--workers: none of milestones-in is an MQTT flow" in result.output
    result = CliRunner().invoke(app, ["listen", "downtime-in", "--workers", "0", "--estate", str(estate.path)],
                                env=estate.environ)
    assert result.exit_code != 0 and "--workers" in result.output
