"""The NATS JetStream bus against a real nats-server: the conformance suite, plus what only it does."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncfabric.bus import open_bus
from syncfabric.bus.nats import NatsBus
from syncfabric.bus.relay import Relay
from syncfabric.errors import BusError, ConfigError
from syncfabric.store import Store
from tests.bus.conformance import BusConformance, MakeBus, drain, ident, logged, nothing_more, write

pytestmark = pytest.mark.nats


@pytest.fixture
def make_bus_on(nats_url: str) -> Iterator[Callable[..., NatsBus]]:
    """Buses over a given store, each on a stream of its own, deleted at the end."""
    made: list[NatsBus] = []

    def make(on: Store, partitions: int = 1, lease_seconds: float = 15.0, **options: object) -> NatsBus:
        stream = options.pop("stream", None) or f"T{uuid.uuid4().hex[:12]}"
        bus = NatsBus(nats_url, on, partitions=partitions, lease_seconds=lease_seconds, stream=stream,
                      ack_wait=5.0, **options)  # type: ignore[arg-type]
        made.append(bus)
        return bus

    yield make
    for bus in made:
        with contextlib.suppress(Exception):
            bus.call("delete the test stream", bus._js.delete_stream(bus.stream))
        bus.close()


@pytest.fixture
def make_bus(store: Store, make_bus_on: Callable[..., NatsBus]) -> MakeBus:
    return lambda **options: make_bus_on(store, **options)


class TestNatsBus(BusConformance):
    @pytest.fixture
    def make_bus(self, make_bus: MakeBus) -> MakeBus:
        return make_bus


def test_the_url_picks_the_nats_bus(store: Store, nats_url: str) -> None:
    stream = f"T{uuid.uuid4().hex[:12]}"
    bus = open_bus(f"{nats_url}?partitions=3&stream={stream}&ack_wait=7", store)
    try:
        assert isinstance(bus, NatsBus) and (bus.partitions, bus.stream, bus.ack_wait) == (3, stream, 7.0)
    finally:
        bus.call("delete", bus._js.delete_stream(stream))  # type: ignore[attr-defined]
        bus.close()


RELAY = """
import sys
from syncfabric.bus import open_bus
from syncfabric.bus.relay import Relay
from syncfabric.store import open_store

store = open_store(sys.argv[1])
bus = open_bus(sys.argv[2], store)
Relay(store, bus, holder="doomed-relay", batch=int(sys.argv[3])).catch_up()
"""


def _messages_in(bus: NatsBus) -> int:
    return int(bus.call("stream info", bus._js.stream_info(bus.stream)).state.messages)


def test_a_relay_killed_mid_batch_loses_and_duplicates_nothing(store: Store, make_bus: MakeBus) -> None:
    bus = make_bus(partitions=3, lease_seconds=1.0)
    assert isinstance(bus, NatsBus)
    keys = [f"I{n:04}" for n in range(3000)]
    write(store, "item", keys)
    write(store, "item", keys, revision=1)
    total = 6000
    doomed = subprocess.Popen([sys.executable, "-c", RELAY, store.url, bus.url, str(total)])
    try:
        deadline = time.monotonic() + 60
        while _messages_in(bus) == 0:
            assert doomed.poll() is None, "the relay ended before publishing"
            assert time.monotonic() < deadline, "the relay published nothing"
            time.sleep(0.002)
    finally:
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=30)
    heir = Relay(store, bus, holder="heir")
    assert store.checkpoint(heir.checkpoint_name) is None  # killed inside its one batch, before the checkpoint
    at_kill = _messages_in(bus)
    assert 0 < at_kill <= total

    assert wait_until(heir.holds_lease, timeout=10)  # once the dead relay's lease expired
    counts = heir.catch_up()
    assert (counts.read, counts.new) == (total, total - at_kill)  # the rest was already there: dropped as duplicates
    assert _messages_in(bus) == total
    with bus.subscribe("planning") as sub:
        got = drain(sub, expected=total, timeout=60, max_messages=1000)[sub.worker]
        nothing_more(sub)
    assert sorted(ident(m) for m in got) == sorted(logged(store))
    versions: dict[str, list[int]] = {}
    for m in got:
        versions.setdefault(m.key, []).append(m.version)
    assert all(v == [1, 2] for v in versions.values())


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def test_an_unreachable_server_is_named_at_once(store: Store) -> None:
    from tests.servers.common import free_port

    port = free_port()
    started = time.monotonic()
    with pytest.raises(BusError, match=f"cannot reach the NATS server at 127.0.0.1:{port}"):
        open_bus(f"nats://127.0.0.1:{port}", store)
    assert time.monotonic() - started < 10


def test_relays_and_workers_must_agree_on_partitions(store: Store, make_bus: MakeBus) -> None:
    first = make_bus(partitions=4)
    with pytest.raises(ConfigError, match="must use the same partitions"):
        make_bus(partitions=2, stream=first.outbox)


def test_the_bus_rides_out_a_server_restart(store: Store, tmp_path: Path) -> None:
    from tests.servers.nats import NatsServer, find_binary

    binary = find_binary()
    if binary is None:
        pytest.fail("nats-server is needed for this test") if os.environ.get("CI") else pytest.skip("no nats-server")
    server = NatsServer(binary)
    url = server.start()
    try:
        bus = NatsBus(url, store, partitions=2, ack_wait=5.0)
        try:
            write(store, "item", [f"I{n}" for n in range(20)])
            stop = threading.Event()
            running = Relay(store, bus, holder="through-the-outage")
            worker = threading.Thread(target=running.run, args=(stop,), kwargs={"idle": 0.05})
            worker.start()
            try:
                assert wait_until(lambda: running.counts.checkpoint == 20, timeout=20)
                server.stop_process()  # the stream is on disk; the same port comes back
                write(store, "item", [f"J{n}" for n in range(10)])
                time.sleep(1.0)
                assert server.start() == url
                assert wait_until(lambda: running.counts.checkpoint == 30, timeout=60), running.counts
            finally:
                stop.set()
                worker.join(timeout=60)
            assert not worker.is_alive()
            with bus.subscribe("planning") as sub:
                got = drain(sub, expected=30)[sub.worker]
                nothing_more(sub)
            assert sorted(ident(m) for m in got) == sorted(logged(store))
        finally:
            bus.close()
    finally:
        server.stop()


def test_a_consumer_keeps_the_entities_it_was_made_for(store: Store, make_bus: MakeBus) -> None:
    bus = make_bus(partitions=1)
    bus.subscribe("items", entities=["item"]).close()
    with pytest.raises(ConfigError, match="subscribe with the entities it was made with"):
        bus.subscribe("items")
    bus.delete_consumer("items")
    bus.subscribe("items").close()


@pytest.mark.postgres
def test_relay_and_two_workers_over_a_postgres_store(postgres_schema_url: str, make_bus_on: Callable[..., NatsBus]
                                                     ) -> None:
    from syncfabric.store import open_store

    with open_store(postgres_schema_url) as pg:
        bus = make_bus_on(pg, partitions=4, lease_seconds=1.0)
        write(pg, "item", [f"I{n:03}" for n in range(300)])
        write(pg, "item", [f"I{n:03}" for n in range(0, 300, 5)], revision=1)
        Relay(pg, bus, holder="relay-1").catch_up()
        a, b = bus.subscribe("planning", worker="a"), bus.subscribe("planning", worker="b")
        try:
            a.rebalance()
            b.rebalance()
            got = drain(a, b, expected=360, max_messages=25)
            nothing_more(a, b)
        finally:
            a.close()
            b.close()
        assert got["a"] and got["b"]
        assert sorted(ident(m) for w in got.values() for m in w) == sorted(logged(pg))
        status = bus.status()
        assert (status.head, status.published, status.consumers[0].pending) == (360, 360, 0)

