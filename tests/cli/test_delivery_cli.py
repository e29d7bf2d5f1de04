"""The delivery commands as a user runs them: deliver, deadletter, replay."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from syncfabric.cli import app
from tests.fixtures import walking_skeleton

INBOUND = ["locations-in", "items-in", "item-locations-in", "inventory-in"]
runner = CliRunner()


@pytest.fixture
def estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with walking_skeleton(tmp_path, seed=5, item_count=12) as skeleton:
        skeleton.use(monkeypatch)
        assert runner.invoke(app, ["sync", *INBOUND]).exit_code == 0
        yield skeleton.erp, skeleton.url


def test_deliver_until_idle_sends_the_backlog_and_shows_counts(estate) -> None:
    erp, url = estate
    total = sum(len(rows) for rows in erp.rows.values())

    result = runner.invoke(app, ["deliver", "planning-out", "--until-idle"])

    assert result.exit_code == 0, result.output
    assert "Continuous delivery" in result.output and f"{total:,}" in result.output
    received = httpx.get(f"{url}/api/_sandbox/received").json()
    assert sum(received["records"].values()) >= total
    again = runner.invoke(app, ["sync", "planning-out"])
    assert again.exit_code == 0 and "planning-out" in again.output
    assert httpx.get(f"{url}/api/_sandbox/received").json()["write_requests"] == received["write_requests"]


def test_deliver_refuses_an_inbound_flow(estate) -> None:
    result = runner.invoke(app, ["deliver", "items-in", "--until-idle"])
    assert result.exit_code == 2
    assert "not an outbound flow" in result.output


def test_dead_letters_are_listed_shown_and_replayed_after_the_fix(estate) -> None:
    erp, url = estate
    item = sorted(erp.rows["items"])[0][0]
    httpx.post(f"{url}/api/_sandbox/faults", json={"reject_keys": [item]}).raise_for_status()
    assert runner.invoke(app, ["deliver", "planning-out", "--until-idle"]).exit_code == 0

    listed = runner.invoke(app, ["deadletter", "list", "--entity", "item"])
    assert listed.exit_code == 0, listed.output
    assert "1 dead letters" in listed.output and item in listed.output and "refused" in listed.output
    status = runner.invoke(app, ["status"])
    assert "dead letters" in status.output
    first = runner.invoke(app, ["deadletter", "list"]).output
    entry_id = next(line.split()[1] for line in first.splitlines() if f" {item} " in line and " item " in line)
    shown = runner.invoke(app, ["deadletter", "show", entry_id])
    assert shown.exit_code == 0 and "rejected" in shown.output and f'"item_id": "{item}"' in shown.output

    declined = runner.invoke(app, ["deadletter", "replay", "--all"], input="n\n")
    assert "keys to resend" in declined.output and "nothing sent" in declined.output
    httpx.post(f"{url}/api/_sandbox/faults", json={"reject_keys": []}).raise_for_status()  # the fix
    replayed = runner.invoke(app, ["deadletter", "replay", "--all", "--yes"])

    assert replayed.exit_code == 0, replayed.output
    assert "failed again 0" in replayed.output
    assert "0 dead letters" in runner.invoke(app, ["deadletter", "list"]).output
    held = httpx.get(f"{url}/api/input/item/", params={"name": item},
                     headers={"Authorization": "Bearer t0ken"}).json()
    assert [row["name"] for row in held] == [item]


def test_discard_closes_dead_letters_with_a_note(estate) -> None:
    erp, url = estate
    item = sorted(erp.rows["items"])[-1][0]
    httpx.post(f"{url}/api/_sandbox/faults", json={"reject_keys": [item]}).raise_for_status()
    runner.invoke(app, ["deliver", "planning-out", "--until-idle"])

    assert runner.invoke(app, ["deadletter", "discard"]).exit_code == 2  # no selection
    discarded = runner.invoke(app, ["deadletter", "discard", "--key", item, "--note", "retired item"])

    assert discarded.exit_code == 0 and "discarded 1 of 1" in discarded.output
    closed = runner.invoke(app, ["deadletter", "list", "--status", "discarded"])
    assert item in closed.output


def test_replay_shows_what_it_will_resend_and_asks_first(estate) -> None:
    erp, url = estate
    assert runner.invoke(app, ["deliver", "planning-out", "--until-idle"]).exit_code == 0
    httpx.post(f"{url}/api/_sandbox/reset").raise_for_status()  # the target lost its data
    items = len(erp.rows["items"])

    assert runner.invoke(app, ["replay", "planning-out"]).exit_code == 2  # nothing selected
    declined = runner.invoke(app, ["replay", "planning-out", "--entity", "item"], input="n\n")
    assert declined.exit_code == 0, declined.output
    assert f"{items:,} records to resend" in declined.output and "nothing sent" in declined.output
    assert httpx.get(f"{url}/api/_sandbox/received").json()["write_requests"] == 0

    done = runner.invoke(app, ["replay", "planning-out", "--entity", "item", "--yes"])

    assert done.exit_code == 0, done.output
    assert f"resent {items:,}: accepted {items:,}, dead-lettered 0" in done.output
    held = httpx.get(f"{url}/api/input/item/", headers={"Authorization": "Bearer t0ken"}).json()
    assert len(held) == items


def test_replay_dead_letters_after_a_fix(estate) -> None:
    erp, url = estate
    item = sorted(erp.rows["items"])[1][0]
    httpx.post(f"{url}/api/_sandbox/faults", json={"reject_keys": [item]}).raise_for_status()
    runner.invoke(app, ["deliver", "planning-out", "--until-idle"])
    httpx.post(f"{url}/api/_sandbox/faults", json={"reject_keys": []}).raise_for_status()

    done = runner.invoke(app, ["replay", "planning-out", "--dead-letters", "--yes"])

    assert done.exit_code == 0, done.output
    assert "keys to resend" in done.output and "failed again 0" in done.output
    assert "0 dead letters" in runner.invoke(app, ["deadletter", "list"]).output


def test_status_shows_a_flow_in_fallback_and_the_recent_alerts(estate, tmp_path: Path) -> None:
    from syncfabric.store import open_store

    with open_store(f"sqlite:///{tmp_path}/.syncfabric/syncfabric.db") as store:
        store.raise_alert("planning-out", "fallback", "planning-out falls back to batch catch-up: target down 60 s")

    status = runner.invoke(app, ["status"])

    assert status.exit_code == 0, status.output
    row = next(line for line in status.output.splitlines() if "planning-out" in line and "outbound" in line)
    assert "(fallback)" in row
    assert "Recent alerts" in status.output and "falls back to batch catch-up" in status.output


def test_deliver_follows_the_log_until_interrupted(estate, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from syncfabric.store import open_store

    erp, _url = estate
    command = [str(Path(sys.executable).parent / "syncfabric"), "deliver", "planning-out"]
    process = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with open_store(f"sqlite:///{tmp_path}/.syncfabric/syncfabric.db") as store:
            deadline = time.monotonic() + 30
            while store.checkpoint("planning-out") != str(store.head()):
                assert time.monotonic() < deadline, "deliver did not catch up"
                time.sleep(0.1)
            erp.change_inventory(2)
            erp.export(("inventory",))
            assert runner.invoke(app, ["sync", "inventory-in"]).exit_code == 0  # new changes while it runs
            while store.checkpoint("planning-out") != str(store.head()):
                assert time.monotonic() < deadline, "deliver did not follow the new changes"
                time.sleep(0.1)
            process.send_signal(signal.SIGINT)
            output = process.communicate(timeout=30)[0].decode()
            [run] = store.runs("planning-out", limit=1)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "Continuous delivery" in output
    assert run.detail["ended_by"] == "stopped" and run.detail["mode"] == "stream"
    assert run.records_out == sum(len(rows) for rows in erp.rows.values()) + 2


def test_deliver_ends_its_session_on_sigterm_even_in_a_backoff(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The target is down and the flow waits 20 s between attempts: SIGTERM ends `deliver` within seconds, its
    session recorded as stopped, the checkpoint where the target left it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from syncfabric.store import open_store
    from tests.fixtures import WALKING_SKELETON

    text = WALKING_SKELETON.read_text().replace("base_delay_seconds: 0.5", "base_delay_seconds: 20")
    assert "base_delay_seconds: 20" in text
    with walking_skeleton(tmp_path, seed=5, item_count=4, text=text) as skeleton:
        skeleton.use(monkeypatch)
        assert runner.invoke(app, ["sync", *INBOUND]).exit_code == 0
        control = httpx.Client(base_url=f"{skeleton.url}/api/_sandbox", timeout=10)
        control.post("/faults", json={"outage": True}).raise_for_status()
        command = [str(Path(sys.executable).parent / "syncfabric"), "deliver", "planning-out"]
        process = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while control.get("/received").json()["faults_injected"] < 1:  # the first attempt failed: it waits
                assert time.monotonic() < deadline and process.poll() is None, "deliver did not try the target"
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=15)[0].decode()
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, output
        with open_store(f"sqlite:///{tmp_path}/.syncfabric/syncfabric.db") as store:
            [run] = store.runs("planning-out", limit=1)
            assert store.checkpoint("planning-out") is None and store.dead_letters() == []
    assert run.detail["ended_by"] == "stopped" and run.records_out == 0


def test_bad_selections_are_named(estate) -> None:
    bad_time = runner.invoke(app, ["replay", "planning-out", "--since", "yesterday"])
    assert bad_time.exit_code == 2 and "--since: not an ISO 8601 time: 'yesterday'" in bad_time.output
    inbound = runner.invoke(app, ["replay", "items-in", "--all"])
    assert inbound.exit_code == 2 and "'items-in' is not an outbound flow" in inbound.output
    status = runner.invoke(app, ["deadletter", "list", "--status", "lost"])
    assert status.exit_code == 2 and "--status must be open, replayed, discarded or all" in status.output
    missing = runner.invoke(app, ["deadletter", "show", "99"])
    assert missing.exit_code == 1 and "no dead letter 99" in missing.output


def test_replay_from_a_sequence_and_a_time(estate) -> None:
    _erp, url = estate
    assert runner.invoke(app, ["deliver", "planning-out", "--until-idle"]).exit_code == 0
    future = runner.invoke(app, ["replay", "planning-out", "--since", "2999-01-01T00:00:00+00:00", "--yes"])
    assert future.exit_code == 0 and "0 records to resend" in future.output and "nothing sent" in future.output
    before = httpx.get(f"{url}/api/_sandbox/received").json()["write_requests"]

    tail = runner.invoke(app, ["replay", "planning-out", "--from-seq", "1", "--key", "P100", "--yes"])

    assert tail.exit_code == 0, tail.output
    assert "1 records to resend" in tail.output and "accepted 1" in tail.output
    assert httpx.get(f"{url}/api/_sandbox/received").json()["write_requests"] == before + 1


def test_the_streaming_demo_rides_out_an_outage() -> None:
    # The demo's policy falls back after 1.5 s of outage, counted from the first failed delivery, which comes after
    # the first change of the outage is recorded: 4 s leaves room for a loaded machine (2.5 s did not always).
    result = runner.invoke(app, ["demo", "--stream", "--items", "10", "--outage-seconds", "4"])

    assert result.exit_code == 0, result.output
    assert "The planning platform goes down" in result.output and "is back" in result.output
    assert "fell back by itself: yes; streaming again: yes; changes applied out of order: 0" in result.output
    assert "Recent alerts" in result.output and "recovered" in result.output
