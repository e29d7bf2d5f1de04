"""Continuous delivery through the bus: the flow checkpoint shared with batch runs, leased partitions shared by
several workers of one flow (threads on the embedded bus; `syncfabric deliver` processes on NATS JetStream), to the
simulated planning platform over real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from syncfabric.bus import open_bus, partition_of
from syncfabric.bus.relay import Relay
from syncfabric.cli import app
from syncfabric.errors import SyncfabricError
from syncfabric.flows.outbound import run_outbound
from syncfabric.flows.retry import RetryPolicy
from syncfabric.flows.stream import StreamConsumer, mark_name, refuse_while_streaming
from syncfabric.store import Store, open_store
from tests.flows.delivery_support import FLOW, connector, effective_versions, journal, put_items, running, wait_for

FAST = RetryPolicy(max_attempts=3, base_delay=0.02, max_delay=0.1, jitter=0.2)


def consumer(store: Store, base_url: str, **options: object) -> StreamConsumer:
    options.setdefault("retry", FAST)
    options.setdefault("poll_interval", 0.02)
    return StreamConsumer(store, FLOW, connector(base_url), entities=["item"], **options)  # type: ignore[arg-type]


def versions_applied_once_in_order(store: Store, control: httpx.Client, keys: set[str]) -> None:
    """Every key ends at the store's version, each version it applied applied once and in order (a version a
    newer one superseded within a batch is never sent), and the platform never saw a version older than one it had."""
    applied = effective_versions(control)
    assert set(applied) == keys
    for key, versions in applied.items():
        row = store.get("item", key)
        assert row is not None
        assert versions == sorted(set(versions)) and versions[-1] == row.version, f"{key}: applied {versions}"
    assert not [entry for entry in journal(control) if entry["effect"] == "stale"]


def test_a_batch_run_and_the_stream_share_the_flow_checkpoint(store: Store, base_url: str,
                                                            control: httpx.Client) -> None:
    put_items(store, ("A", "a1"), ("B", "b1"))
    run_outbound(store, FLOW, connector(base_url), entities=["item"], mode="changes", retry=FAST)
    assert store.checkpoint(FLOW) == "2"
    put_items(store, ("A", "a2"))

    stats = consumer(store, base_url).run(until_idle=True)  # its bus consumer is new: it starts at the checkpoint

    assert stats.delivered == 1 and store.checkpoint(FLOW) == "3"
    put_items(store, ("B", "b2"), ("C", "c1"))
    run_outbound(store, FLOW, connector(base_url), entities=["item"], mode="changes", retry=FAST)
    put_items(store, ("C", "c2"))
    again = consumer(store, base_url).run(until_idle=True)  # skips what the batch run delivered meanwhile

    assert again.delivered == 1 and store.checkpoint(FLOW) == "6"
    assert [(e["key"], e["version"], e["effect"]) for e in journal(control)] == [
        ("A", 1, "created"), ("B", 1, "created"), ("A", 2, "updated"), ("B", 2, "updated"), ("C", 1, "created"),
        ("C", 2, "updated")]


def test_a_batch_run_is_refused_while_a_worker_delivers_the_flow(store: Store, base_url: str) -> None:
    put_items(store, ("A", "a1"))
    with running(consumer(store, base_url)):
        wait_for(lambda: store.checkpoint(FLOW) == "1", what="the stream")
        with pytest.raises(SyncfabricError, match="being delivered continuously"):
            refuse_while_streaming(store, FLOW)
    refuse_while_streaming(store, FLOW)  # the worker left: the flow is free again


def test_two_workers_share_a_flow_on_partitions_keeping_per_key_order(store: Store, base_url: str,
                                                                      control: httpx.Client) -> None:
    bus = "embedded://?partitions=4&lease_seconds=3"
    keys = [f"K{n}" for n in range(12)]
    assert len({partition_of("item", key, 4) for key in keys}) == 4
    first, second = consumer(store, base_url, bus=bus, batch_size=5), consumer(store, base_url, bus=bus, batch_size=5)
    with running(first) as one, running(second) as two:
        wait_for(lambda: len(set(store.leases(f"bus:{FLOW}:partition:").values())) == 2, what="a share each")
        for round_ in range(1, 5):
            put_items(store, *((key, f"v{round_}") for key in keys))
        wait_for(lambda: store.checkpoint(FLOW) == str(store.head()), what="both workers")

    versions_applied_once_in_order(store, control, set(keys))
    assert one[0].delivered > 0 and two[0].delivered > 0, "both workers took a share"
    assert one[0].changes + two[0].changes == store.head() == 48
    assert {store.checkpoint(mark_name(FLOW, p)) for p in range(4)} == {"48"}


DELIVER_ESTATE = """name: plant
store: {store}
bus: {bus}
systems:
  planning:
    kind: planning
    connection: {{base_url: "{base_url}"}}
flows:
  {flow}:
    direction: outbound
    system: planning
    entities: [item]
    mode: changes
    batch_size: 7
    delivery:
      poll_interval_seconds: 0.05
      retry: {{max_attempts: 3, base_delay_seconds: 0.02, max_delay_seconds: 0.1}}
"""


@pytest.mark.nats
def test_two_deliver_processes_on_nats_deliver_every_change_once_in_effect_in_per_key_order(
    tmp_path: Path, nats_url: str, base_url: str, control: httpx.Client
) -> None:
    stream = f"T{uuid.uuid4().hex[:12]}"
    bus_url = f"{nats_url}?partitions=4&stream={stream}&lease_seconds=4"
    store_url = f"sqlite:///{tmp_path}/store.db"
    estate = tmp_path / "estate.yaml"
    estate.write_text(DELIVER_ESTATE.format(store=store_url, bus=bus_url, base_url=base_url, flow=FLOW))
    keys = [f"N{n}" for n in range(10)]
    with open_store(store_url) as store, open_bus(bus_url, store) as bus:
        put_items(store, *((key, "v1") for key in keys))
        stop = threading.Event()
        relay = threading.Thread(target=Relay(store, bus).run, args=(stop,), daemon=True)
        relay.start()
        command = [sys.executable, "-m", "syncfabric.cli", "deliver", FLOW, "-e", str(estate)]
        workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env={**os.environ, "COLUMNS": "200"}) for _ in range(2)]
        try:
            wait_for(lambda: len(set(store.leases(f"bus:{FLOW}:partition:").values())) == 2, timeout=60,
                     what="two workers holding partitions")
            for round_ in range(2, 6):
                put_items(store, *((key, f"v{round_}") for key in keys))
            wait_for(lambda: store.checkpoint(FLOW) == str(store.head()), timeout=60, what="the workers")
            refused = CliRunner().invoke(app, ["sync", FLOW, "-e", str(estate)])
            assert refused.exit_code != 0 and "being delivered continuously" in refused.output, refused.output
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGINT)
            outputs = [worker.communicate(timeout=30)[0] for worker in workers]
            stop.set()
            relay.join(timeout=10)
            bus.call("delete", bus._js.delete_stream(stream))  # type: ignore[attr-defined]
        assert all(worker.returncode == 0 for worker in workers), outputs
        versions_applied_once_in_order(store, control, set(keys))
        shares = [delivered_in(output) for output in outputs]
        assert all(share > 0 for share in shares), f"both workers delivered a share: {shares}"
        assert sum(shares) >= len(keys)
        sessions = [run for run in store.runs(FLOW, limit=10) if run.detail.get("mode") == "stream"]
        assert sorted(run.records_out for run in sessions) == sorted(shares), "each session is in the run history"


def delivered_in(output: str) -> int:
    """The ``delivered`` count of a `syncfabric deliver` session's final table."""
    row = [line for line in output.splitlines() if line.startswith("│ " + FLOW)][-1]
    return int(row.split("│")[4].strip().replace(",", ""))


def test_a_delivered_batch_moves_every_mark_in_the_one_commit_that_records_it(store: Store, base_url: str,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    put_items(store, ("A", "a1"), ("B", "b1"), ("C", "c1"))
    worker = consumer(store, base_url)
    worker._subscription()  # joined: what follows is the delivery alone
    commits = []
    transaction = store.transaction

    def counted(**options: bool) -> object:
        commits.append(1)
        return transaction(**options)

    monkeypatch.setattr(store, "transaction", counted)
    assert worker.step() == 3
    assert len(commits) == 1
    assert store.checkpoint(FLOW) == store.checkpoint(mark_name(FLOW, 0)) == store.checkpoint(f"bus:{FLOW}:0") == "3"
    worker.close()
