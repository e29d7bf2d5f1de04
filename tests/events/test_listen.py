"""`syncfabric listen` and event flows through the inbound machinery: rules, quarantine, replay, run history."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from syncfabric import cli
from syncfabric.cli import app
from syncfabric.config import load_estate
from syncfabric.connectors.webhook.signature import sign
from syncfabric.flows.listen import Listener
from syncfabric.flows.runtime import Runtime
from syncfabric.store import open_store
from tests.events.support import SECRET, PlantEstate, downtime, milestone, wait_for
from tests.servers.common import free_port
from tests.servers.mosquitto import Broker, publish

WALKING_SKELETON = Path(__file__).parents[2] / "examples" / "walking-skeleton" / "estate.yaml"
runner = CliRunner()


def test_listen_runs_for_a_while_with_a_count_and_records_the_run(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.console, "width", 220)  # the status table's checkpoint column in full
    port = free_port()
    estate = PlantEstate(tmp_path, webhook_port=port)
    answers: list[int] = []

    def logistics_platform() -> None:
        url = f"http://127.0.0.1:{port}/events/shipment-milestones"
        deadline = time.monotonic() + 10
        while len(answers) < 5 and time.monotonic() < deadline:
            body = json.dumps(milestone(len(answers))).encode()
            stamp = str(int(time.time()))
            try:
                response = httpx.post(url, content=body, timeout=5, headers={
                    "X-Syncfabric-Timestamp": stamp, "X-Syncfabric-Signature": sign(SECRET, stamp, body)})
            except httpx.TransportError:
                time.sleep(0.1)  # not listening yet
                continue
            answers.append(response.status_code)

    sender = threading.Thread(target=logistics_platform)
    sender.start()
    result = runner.invoke(app, ["listen", "milestones-in", "--for", "3", "--estate", str(estate.path)],
                           env=estate.environ)
    sender.join()
    assert result.exit_code == 0, result.output
    assert answers == [200] * 5
    assert "listening: milestones-in (webhook logistics shipment-milestones)" in result.output
    row = next(line for line in result.output.splitlines() if "milestones-in" in line and "│" in line)
    assert [cell.strip() for cell in row.split("│")[1:6]] == ["milestones-in", "5", "5", "0", "0"]
    with open_store(estate.store_url) as store:
        run = store.runs("milestones-in")[0]
        assert (run.status.value, run.records_in) == ("succeeded", 5)
        assert store.count("shipment_milestone") == 5
    status = runner.invoke(app, ["status", "--estate", str(estate.path)], env=estate.environ)
    assert status.exit_code == 0, status.output
    row = next(line for line in status.output.splitlines() if "milestones-in" in line)
    assert "/events/shipment-milestones" in row  # where the last committed delivery came from


def test_listen_refuses_flows_that_cannot_be_subscribed(tmp_path: Path) -> None:
    estate = tmp_path / "estate.yaml"
    estate.write_text(WALKING_SKELETON.read_text())
    result = runner.invoke(app, ["listen", "items-in", "planning-out", "nope", "--estate", str(estate)],
                           env={"PLANNING_TOKEN": "x"})
    assert result.exit_code == 2
    assert "system 'erp-legacy' (kind files) pushes nothing to subscribe to" in result.output
    assert "flow 'planning-out' is outbound" in result.output
    assert "unknown flow 'nope'" in result.output
    nothing = runner.invoke(app, ["listen", "--estate", str(estate)], env={"PLANNING_TOKEN": "x"})
    assert nothing.exit_code == 2 and "--all" in nothing.output


@pytest.mark.mosquitto
def test_a_rule_quarantines_an_event_that_is_stored_after_a_fix_and_replay(mosquitto: Broker, tmp_path: Path) -> None:
    estate = PlantEstate(tmp_path, mosquitto)
    estate.path.write_text(estate.path.read_text() + (
        "\nrules:\n  machine_downtime:\n    - {kind: required, field: expected_end}\n"))
    with Runtime(load_estate(estate.path, environ=estate.environ)) as runtime:
        listener = Listener(runtime, ["downtime-in"])
        listener.start()
        try:
            publish(mosquitto, [
                (estate.downtime_topic("P100"), json.dumps(downtime(1, expected_end="2026-03-02T09:00:00Z")).encode()),
                (estate.downtime_topic("P100"), json.dumps(downtime(2)).encode()),
            ])
            store = runtime.store
            assert wait_for(lambda: store.count("machine_downtime") == 1 and len(store.quarantine()) == 1)
        finally:
            listener.stop()
            listener.join()
        [entry] = runtime.store.quarantine()
        assert entry.record_key == "DT-000002" and entry.flow == "downtime-in"
        assert any("@ $.expected_end" in reason for reason in entry.reasons), entry.reasons
        assert json.loads(entry.payload)["_topic"] == estate.downtime_topic("P100")

    env = estate.environ
    edited = runner.invoke(app, ["quarantine", "edit", str(entry.id), "--set", "expected_end=2026-03-02T10:00:00Z",
                                 "--estate", str(estate.path)], env=env)
    assert edited.exit_code == 0, edited.output
    replayed = runner.invoke(app, ["quarantine", "replay", str(entry.id), "--estate", str(estate.path)], env=env)
    assert replayed.exit_code == 0, replayed.output
    with open_store(estate.store_url) as store:
        row = store.get("machine_downtime", "DT-000002")
        assert row is not None and json.loads(row.payload or b"{}")["expected_end"] == "2026-03-02T10:00:00Z"
        assert store.quarantine() == []


def test_sync_leaves_event_flows_to_listen(tmp_path: Path) -> None:
    estate = PlantEstate(tmp_path, webhook_port=free_port())
    every = runner.invoke(app, ["sync", "--all", "--estate", str(estate.path)], env=estate.environ)
    assert every.exit_code == 2
    assert "every flow of this estate is an event flow: run them with `syncfabric listen --all`" in every.output
    (tmp_path / "drop").mkdir()
    mixed = estate.path.read_text()
    mixed = mixed.replace("systems:\n", "systems:\n  erp:\n    kind: files\n    connection: {folder: drop}\n", 1)
    mixed = mixed.replace("mappings:\n", "mappings:\n  erp-sites:\n    system: erp\n    entity: location\n"
                                          "    fields: {location_id: SITE, name: NAME, kind: TYPE}\n", 1)
    mixed = mixed.replace("flows:\n", "flows:\n  sites-in:\n    direction: inbound\n    system: erp\n"
                                       "    entities: [location]\n    source: \"sites*.csv\"\n"
                                       "    mapping: erp-sites\n", 1)
    estate.path.write_text(mixed)
    every = runner.invoke(app, ["sync", "--all", "--estate", str(estate.path)], env=estate.environ)
    assert every.exit_code == 0, every.output
    assert "sites-in" in every.output and "milestones-in" not in every.output
    one = runner.invoke(app, ["sync", "milestones-in", "--estate", str(estate.path)], env=estate.environ)
    assert one.exit_code == 1
    assert "run the flow with `syncfabric listen FLOW`" in one.output


def test_a_batch_mapped_as_one_page_is_committed_as_one_mapped_event_by_event(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Shipment milestones (a rename-only mapping, optional fields left out) are mapped a batch at a time; what that
    stores, acknowledges and counts is what mapping each event on its own does: new keys, a redelivery, a changed
    event, and batches the page cannot take (an event that fails its checks, a key twice)."""
    import syncfabric.flows.listen as listen
    from syncfabric.connectors.base import Received
    from syncfabric.flows.listen import ListenResult, commit_batch

    batches = [
        [milestone(1), milestone(2)],
        [milestone(1), milestone(2, place="BEANR"), milestone(3, detail="customs")],  # again, changed, new
        [milestone(4), milestone(5, occurred_at="not a time")],  # one fails its checks: event by event
        [milestone(6), milestone(6, place="PLGDN")],  # a key twice: event by event, the last kept
    ]

    def run(folder: Path, one_by_one: bool) -> tuple[list[list[str]], dict[str, int], dict[str, bytes], int]:
        pages = 0
        original = listen._map_all_at_once

        def counted(*args: Any) -> Any:
            nonlocal pages
            mapped = None if one_by_one else original(*args)
            pages += mapped is not None
            return mapped

        monkeypatch.setattr(listen, "_map_all_at_once", counted)
        folder.mkdir()
        estate = PlantEstate(folder)
        statuses: list[list[str]] = []
        with Runtime(load_estate(estate.path, environ=estate.environ)) as runtime:
            field_map = runtime.field_map("logistics-milestones")
            result = ListenResult(flow="milestones-in", direction="inbound")
            for number, events in enumerate(batches):
                batch = [Received([event], f"webhook://test/{number}/{at}", lambda first, outcomes: None)
                         for at, event in enumerate(events)]
                acks = commit_batch(runtime.store, "milestones-in", field_map, batch, result)
                statuses.append([ack.status for ack in acks])
            stored = list(runtime.store.current("shipment_milestone"))
            counts = {name: getattr(result, name) for name in ("inserted", "updated", "unchanged", "superseded",
                                                                 "quarantined", "received")}
            counts["versions"] = sum(row.version for row in stored)
        return statuses, counts, {row.key: row.payload or b"" for row in stored}, pages

    paged = run(tmp_path / "paged", one_by_one=False)
    single = run(tmp_path / "single", one_by_one=True)
    assert paged[3] == 2 and single[3] == 0  # the first two batches as pages
    assert paged[:3] == single[:3]
    statuses, counts, rows, _ = paged
    assert statuses == [["stored", "stored"], ["stored", "stored", "stored"], ["stored", "quarantined"],
                        ["stored", "stored"]]
    assert counts["inserted"] == 5 and counts["updated"] == 1 and counts["quarantined"] == 1
    at = "|departed|2026-03-02T08:00:00+00:00"
    assert json.loads(rows[f"SH-00002{at}"])["place"] == "BEANR"
    assert json.loads(rows[f"SH-00003{at}"])["detail"] == "customs"
    assert json.loads(rows[f"SH-00006{at}"])["place"] == "PLGDN"

    # A key stored with a newer source time than the page's event keeps what it holds (read from the JSON).
    times = listen._payload_times(["K", "L"], [b'{"occurred_at": "2026-03-02T08:00:00Z"}',
                                               b'{"occurred_at": "2026-03-02T10:00:00Z"}'], "occurred_at")
    assert listen._superseded({"K": "2026-03-02T09:00:00Z", "L": "2026-03-02T09:00:00Z"}, times) == {"K"}


def test_a_request_taken_across_batches_is_acknowledged_part_by_part_each_after_its_commit(tmp_path: Path) -> None:
    """A webhook request of 8 events (one not an object, one failing its checks) through batches of 3: each part
    is acknowledged in order, only once the commit holding it is done, and the request is answered once the last
    part is; each refused element is in quarantine under its own index, each stored one has it as its lineage."""
    import asyncio

    import msgspec

    from syncfabric.connectors.inbox import Inbox
    from syncfabric.connectors.webhook.connector import WebhookConnector, _outcome
    from syncfabric.flows.listen import ListenResult, acknowledge, commit_batch

    where = "POST /events/shipment-milestones from 127.0.0.1 at 1767225600"
    events: list[object] = [milestone(n) for n in range(8)]
    events[2] = 7
    events[6] = milestone(6, milestone="teleported")
    loop = asyncio.new_event_loop()
    estate = PlantEstate(tmp_path)
    try:
        with Runtime(load_estate(estate.path, environ=estate.environ)) as runtime:
            store = runtime.store
            delivery, answers, single = WebhookConnector._events(json.dumps(events).encode(), where, loop)
            assert not single and len(delivery.rows) == 8 and set(delivery.problems or ()) == {2}
            acked: list[tuple[int, list[str], int]] = []

            def ack(first: int, outcomes: list[Any]) -> None:  # what the part's commit left in the store by now
                acked.append((first, [outcome.status for outcome in outcomes], store.count("shipment_milestone")))
                delivery.ack(first, outcomes)

            inbox = Inbox()
            inbox.put(msgspec.structs.replace(delivery, ack=ack))
            field_map = runtime.field_map("logistics-milestones")
            result = ListenResult(flow="milestones-in", direction="inbound")
            while batch := inbox.take(3, max_wait=0, poll=0):
                assert not answers.future.done()
                acknowledge(batch, commit_batch(store, "milestones-in", field_map, batch, result))
                loop.run_until_complete(asyncio.sleep(0))  # the answer's wake-up, if it is due
            assert acked == [(0, ["stored", "stored", "quarantined"], 2), (3, ["stored", "stored", "stored"], 5),
                             (6, ["quarantined", "stored"], 6)]
            status, answer = _outcome(loop.run_until_complete(answers.future), single)
            assert status == 202 and answer["status"] == "partly quarantined" and answer["events"] == 8
            assert [entry["index"] for entry in answer["quarantined"]] == [2, 6]
            assert answer["quarantined"][0]["reasons"] == ["event must be a JSON object, got int @ $[2]"]
            assert "@ $.milestone" in answer["quarantined"][1]["reasons"][0]
            assert (result.received, result.inserted, result.quarantined, result.batches) == (8, 6, 2, 3)
            assert sorted(entry.location for entry in store.quarantine()) == [f"{where} [2]", f"{where} [6]"]
            log = store.changes(0, entities=["shipment_milestone"], limit=100)
            assert [change.lineage.source_id for change in log] == [f"{where} [{n}]" for n in (0, 1, 3, 4, 5, 7)]
            assert json.loads(store.checkpoint("milestones-in") or "{}")["cursor"] == f"{where} [7]"

            one, answers, single = WebhookConnector._events(json.dumps(milestone(9)).encode(), where, loop)
            assert single and one.locations() == [where]  # a body of one object: its location as it is
    finally:
        loop.close()
