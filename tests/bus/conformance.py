"""The conformance suite every bus passes. A backend's module subclasses :class:`BusConformance` and overrides the
``make_bus`` fixture only: a callable ``(partitions=..., lease_seconds=...) -> Bus`` over the ``store`` fixture.

Changes reach the bus the same way for every backend: through :class:`~syncfabric.bus.relay.Relay` (a no-op
publish for the embedded bus, whose consumers read the change log itself).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncfabric.bus import Bus, Message, Subscription
from syncfabric.bus.relay import Relay
from syncfabric.store import IncomingRecord, Store, content_hash, open_store

MakeBus = Callable[..., Bus]
Id = tuple[str, str, int]


def write(store: Store, entity: str, keys: list[str], revision: int = 0) -> None:
    with store.transaction() as tx:
        tx.apply(entity, [IncomingRecord(key, f'{{"k":"{key}","r":{revision}}}'.encode()) for key in keys])


def relay(store: Store, bus: Bus) -> None:
    Relay(store, bus, holder="test-relay").catch_up()


def logged(store: Store, entities: list[str] | None = None) -> list[Id]:
    return [(c.entity, c.key, c.version) for c in store.changes(0, entities=entities, limit=1_000_000)]


def ident(message: Message) -> Id:
    return message.entity, message.key, message.version


def drain(
    *subs: Subscription, expected: int, timeout: float = 30.0, max_messages: int = 50
) -> dict[str, list[Message]]:
    """Fetch round-robin from the subscriptions, acking every batch, until ``expected`` messages arrived."""
    got: dict[str, list[Message]] = {sub.worker: [] for sub in subs}
    deadline = time.monotonic() + timeout
    while sum(len(v) for v in got.values()) < expected:
        assert time.monotonic() < deadline, f"only {sum(len(v) for v in got.values())} of {expected} delivered"
        for sub in subs:
            batch = sub.fetch(max_messages=max_messages, timeout=0.05)
            if batch is not None:
                got[sub.worker].extend(batch.messages)
                batch.ack()
    return got


WORKER = """
import sys, time
from syncfabric.bus import open_bus
from syncfabric.store import open_store

store = open_store(sys.argv[1])
bus = open_bus(sys.argv[2], store)
sub = bus.subscribe("planning", worker="doomed")
batch = sub.fetch(max_messages=int(sys.argv[3]), timeout=20)
print(",".join(f"{m.entity}:{m.key}:{m.version}" for m in batch), flush=True)
time.sleep(600)
"""
"""A worker process that takes a batch and hangs on to it, unacknowledged, until it is killed."""


SHARING_WORKER = """
import pathlib, sys, time
from syncfabric.bus import open_bus
from syncfabric.store import open_store

store = open_store(sys.argv[1])
bus = open_bus(sys.argv[2], store)
out, stop = pathlib.Path(sys.argv[3]), pathlib.Path(sys.argv[4])
with bus.subscribe("planning", worker=out.stem) as sub, out.open("w") as file:
    while True:
        batch = sub.fetch(max_messages=20, timeout=0.3)
        if batch is None:
            if stop.exists():
                break
            continue
        time.sleep(0.02)  # delivering the batch somewhere
        file.write("".join(f"{m.entity}:{m.key}:{m.version}\\n" for m in batch))
        file.flush()
        batch.ack()
"""
"""A worker process of the consumer ``planning``: writes what it delivers to a file, until told to stop."""


def nothing_more(*subs: Subscription) -> None:
    for sub in subs:
        assert sub.fetch(timeout=0.3) is None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path}/store.db?synchronous=normal") as store:
        yield store


class BusConformance:
    @pytest.fixture
    def make_bus(self, store: Store) -> MakeBus:
        raise NotImplementedError

    def test_every_change_is_delivered_in_log_order(self, store: Store, make_bus: MakeBus) -> None:
        bus = make_bus(partitions=1)
        write(store, "item", [f"I{n:03}" for n in range(120)])
        write(store, "location", ["L1", "L2"])
        write(store, "item", [f"I{n:03}" for n in range(0, 120, 3)], revision=1)
        with store.transaction() as tx:
            tx.delete("location", ["L2"])
        relay(store, bus)
        with bus.subscribe("planning") as sub:
            got = drain(sub, expected=len(logged(store)))[sub.worker]
            nothing_more(sub)
        assert [ident(m) for m in got] == logged(store)
        assert [m.seq for m in got] == sorted(m.seq for m in got)
        deleted = got[-1]
        assert (deleted.entity, deleted.key, deleted.op, deleted.payload) == ("location", "L2", "delete", None)
        first = got[0]
        assert first.payload == b'{"k":"I000","r":0}' and first.message_id == "item:I000:1"
        assert first.content_hash == content_hash(b'{"k":"I000","r":0}')

    def test_consumers_resume_where_they_acknowledged(self, store: Store, make_bus: MakeBus) -> None:
        bus = make_bus(partitions=2)
        write(store, "item", [f"I{n}" for n in range(40)])
        relay(store, bus)
        with bus.subscribe("planning") as sub:
            first = drain(sub, expected=40)[sub.worker]
        write(store, "item", [f"I{n}" for n in range(40, 50)])
        relay(store, bus)
        with bus.subscribe("planning") as sub:
            then = drain(sub, expected=10)[sub.worker]
            nothing_more(sub)
        assert sorted(ident(m) for m in first + then) == sorted(logged(store))
        with bus.subscribe("analytics") as other:  # another consumer name has its own progress
            assert len(drain(other, expected=50)[other.worker]) == 50

    def test_per_key_order_holds_across_workers_and_partitions(self, store: Store, make_bus: MakeBus) -> None:
        bus = make_bus(partitions=4, lease_seconds=1.0)
        keys = [f"K{n}" for n in range(12)]
        for revision in range(6):
            write(store, "item", keys, revision)
        relay(store, bus)
        a, b = bus.subscribe("planning", worker="a"), bus.subscribe("planning", worker="b")
        try:
            a.rebalance()
            b.rebalance()
            got = drain(a, b, expected=72, max_messages=7)
        finally:
            a.close()
            b.close()
        for worker in got.values():
            versions: dict[str, list[int]] = defaultdict(list)
            for m in worker:
                versions[m.key].append(m.version)
            for key, seen in versions.items():
                assert seen == sorted(seen), f"{key} delivered out of order: {seen}"
        assert sorted(ident(m) for w in got.values() for m in w) == sorted(logged(store))

    def test_two_workers_of_one_name_split_the_work_without_loss(self, store: Store, make_bus: MakeBus) -> None:
        bus = make_bus(partitions=4, lease_seconds=1.0)
        write(store, "item", [f"I{n:03}" for n in range(200)])
        relay(store, bus)
        a = bus.subscribe("planning", worker="a")
        assert a.partitions() == [0, 1, 2, 3]  # alone, it takes every partition
        b = bus.subscribe("planning", worker="b")
        try:
            a.rebalance()  # gives two back
            b.rebalance()  # takes them
            assert sorted(a.partitions() + b.partitions()) == [0, 1, 2, 3]
            assert len(a.partitions()) == len(b.partitions()) == 2
            got = drain(a, b, expected=200, max_messages=10)
            nothing_more(a, b)
        finally:
            a.close()
            b.close()
        assert got["a"] and got["b"]
        assert not {ident(m) for m in got["a"]} & {ident(m) for m in got["b"]}
        assert sorted(ident(m) for w in got.values() for m in w) == sorted(logged(store))
        assert bus.status().consumers[0].pending == 0

    def test_a_batch_not_acknowledged_is_delivered_again(self, store: Store, make_bus: MakeBus) -> None:
        bus = make_bus(partitions=1)
        write(store, "item", [f"I{n}" for n in range(30)])
        relay(store, bus)
        first = bus.subscribe("planning", worker="first")
        batch = first.fetch(max_messages=10)
        assert batch is not None and len(batch) == 10
        first.close()  # leaves without acknowledging
        with bus.subscribe("planning", worker="second") as second:
            got = drain(second, expected=30)["second"]
            nothing_more(second)
        assert [ident(m) for m in got] == logged(store)  # the unacknowledged ten again, first, then the rest

    def test_a_dead_workers_partitions_are_taken_over_when_its_lease_expires(
        self, store: Store, make_bus: MakeBus
    ) -> None:
        bus = make_bus(partitions=2, lease_seconds=2.0)
        write(store, "item", [f"I{n}" for n in range(30)])
        relay(store, bus)
        dead = bus.subscribe("planning", worker="dead")
        batch = dead.fetch(max_messages=5)
        assert batch is not None
        lost = {ident(m) for m in batch}
        # `dead` stops renewing: no close, no ack. Until its leases expire, nobody else reads its partitions.
        survivor = bus.subscribe("planning", worker="survivor")
        try:
            assert survivor.partitions() == []
            started = time.monotonic()
            got = drain(survivor, expected=30, timeout=15)["survivor"]
            assert time.monotonic() - started >= 1.0  # it waited for the dead worker's leases to expire
            assert lost <= {ident(m) for m in got}
            assert sorted(ident(m) for m in got) == sorted(logged(store))
        finally:
            survivor.close()
            dead.close()

    def test_replay_from_a_position_and_from_a_time(self, store: Store, make_bus: MakeBus) -> None:
        bus = make_bus(partitions=2)
        write(store, "item", [f"A{n}" for n in range(20)])
        time.sleep(0.05)
        since = dt.datetime.now(dt.UTC)
        time.sleep(0.05)
        write(store, "item", [f"B{n}" for n in range(15)])
        write(store, "location", ["L1"])
        relay(store, bus)
        everything = list(bus.replay(1))
        assert [ident(m) for m in everything] == logged(store)
        assert [m.position for m in everything] == sorted(m.position for m in everything)
        tenth = everything[9]
        assert [ident(m) for m in bus.replay(tenth.position)] == logged(store)[9:]
        recent = [ident(m) for m in bus.replay(since)]
        assert recent == logged(store)[20:]
        assert [ident(m) for m in bus.replay(since, entities=["item"])] == logged(store, ["item"])[20:]
        assert list(bus.replay(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))) == []
        assert [ident(m) for m in bus.replay_changes(everything[12].seq)] == logged(store)[12:]
        assert [ident(m) for m in bus.replay_changes(1, entities=["location"])] == logged(store, ["location"])
        assert list(bus.replay_changes(store.head() + 1)) == []

    def test_a_new_consumer_can_start_at_a_position_or_a_time(self, store: Store, make_bus: MakeBus) -> None:
        bus = make_bus(partitions=1)
        write(store, "item", [f"A{n}" for n in range(10)])
        time.sleep(0.05)
        since = dt.datetime.now(dt.UTC)
        write(store, "item", [f"B{n}" for n in range(5)])
        relay(store, bus)
        position = list(bus.replay(1))[4].position
        with bus.subscribe("from-position", start=position) as sub:
            assert [ident(m) for m in drain(sub, expected=11)[sub.worker]] == logged(store)[4:]
            nothing_more(sub)
        with bus.subscribe("from-time", start=since) as sub:
            assert [ident(m) for m in drain(sub, expected=5)[sub.worker]] == logged(store)[10:]
            nothing_more(sub)

    def test_entity_filter(self, store: Store, make_bus: MakeBus) -> None:
        bus = make_bus(partitions=2)
        write(store, "item", ["I1", "I2"])
        write(store, "location", ["L1", "L2", "L3"])
        relay(store, bus)
        with bus.subscribe("locations", entities=["location"]) as sub:
            got = drain(sub, expected=3)[sub.worker]
            nothing_more(sub)
        assert sorted(ident(m) for m in got) == sorted(logged(store, ["location"]))

    def test_a_republished_change_is_not_delivered_twice(self, store: Store, make_bus: MakeBus) -> None:
        bus = make_bus(partitions=2)
        write(store, "item", [f"I{n}" for n in range(25)])
        first = Relay(store, bus, holder="r1")
        first.catch_up()
        with store.transaction() as tx:  # as if the relay died after publishing, before its checkpoint committed
            tx.set_checkpoint(first.checkpoint_name, "10")
        again = Relay(store, bus, holder="r1").catch_up()
        assert (again.read, again.new) == (15, 0)
        with bus.subscribe("planning") as sub:
            got = drain(sub, expected=25)[sub.worker]
            nothing_more(sub)
        assert sorted(ident(m) for m in got) == sorted(logged(store))

    def test_status_shows_the_lag(self, store: Store, make_bus: MakeBus) -> None:
        bus = make_bus(partitions=2)
        write(store, "item", [f"I{n}" for n in range(12)])
        relay(store, bus)
        with bus.subscribe("planning", worker="w1") as sub:
            status = bus.status()
            assert status.head == 12 and status.kind == bus.kind
            (consumer,) = status.consumers
            assert (consumer.consumer, consumer.pending, consumer.workers) == ("planning", 12, ["w1"])
            drain(sub, expected=12)
            assert bus.status().consumers[0].pending == 0
        bus.delete_consumer("planning")
        assert bus.status().consumers == []

    def test_only_one_relay_publishes_at_a_time(self, store: Store, make_bus: MakeBus) -> None:
        from syncfabric.errors import BusError

        bus = make_bus(partitions=1)
        write(store, "item", ["I1"])
        assert Relay(store, bus, holder="one", lease_seconds=30).holds_lease()
        with pytest.raises(BusError, match="held by one"):
            Relay(store, bus, holder="two").catch_up()

    def test_a_worker_killed_mid_batch_loses_nothing(self, store: Store, make_bus: MakeBus) -> None:
        bus = make_bus(partitions=2, lease_seconds=1.0)
        write(store, "item", [f"I{n}" for n in range(40)])
        relay(store, bus)
        doomed = subprocess.Popen([sys.executable, "-c", WORKER, store.url, bus.url, "15"], stdout=subprocess.PIPE,
                                  text=True)
        try:
            line = doomed.stdout.readline().strip()  # type: ignore[union-attr]
        finally:
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(timeout=30)
            doomed.stdout.close()  # type: ignore[union-attr]
        assert line, f"the worker process took no batch (exit code {doomed.returncode})"
        taken = {(e, k, int(v)) for e, k, v in (item.split(":") for item in line.split(","))}
        assert len(taken) == 15
        with bus.subscribe("planning", worker="heir") as heir:
            got = drain(heir, expected=40, timeout=20)["heir"]
            nothing_more(heir)
        assert taken <= {ident(m) for m in got}
        assert sorted(ident(m) for m in got) == sorted(logged(store))

    def test_worker_processes_of_one_name_share_the_work(self, store: Store, make_bus: MakeBus, tmp_path: Path) -> None:
        bus = make_bus(partitions=4, lease_seconds=2.0)
        write(store, "item", [f"I{n:04}" for n in range(1000)])
        write(store, "item", [f"I{n:04}" for n in range(0, 1000, 2)], revision=1)
        relay(store, bus)
        total = len(logged(store))
        stop = tmp_path / "stop"
        outs = [tmp_path / f"worker{n}.txt" for n in range(2)]
        workers = []
        for out in outs:
            workers.append(subprocess.Popen([sys.executable, "-c", SHARING_WORKER, store.url, bus.url, str(out),
                                             str(stop)]))
            time.sleep(0.3)

        def delivered() -> list[list[Id]]:
            got = []
            for out in outs:
                lines = out.read_text().splitlines() if out.exists() else []
                got.append([(e, k, int(v)) for e, k, v in (line.split(":") for line in lines if line)])
            return got

        try:
            deadline = time.monotonic() + 90
            while sum(len(g) for g in delivered()) < total:
                assert all(w.poll() is None for w in workers), "a worker process ended early"
                assert time.monotonic() < deadline, f"{sum(len(g) for g in delivered())} of {total} delivered"
                time.sleep(0.1)
            stop.touch()
            for worker in workers:
                assert worker.wait(timeout=30) == 0
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait(timeout=30)
        first, second = delivered()
        assert first and second, (len(first), len(second))  # both did part of the work
        assert sorted(first + second) == sorted(logged(store))  # all of it, once
        for got in (first, second):
            versions: dict[str, list[int]] = defaultdict(list)
            for _, key, version in got:
                versions[key].append(version)
            assert all(v == sorted(v) for v in versions.values())
