"""The embedded bus: the conformance suite, plus what only it does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from syncfabric.bus import open_bus, parse_bus_url, partition_of
from syncfabric.bus.embedded import EmbeddedBus
from syncfabric.errors import ConfigError
from syncfabric.store import Store, open_store
from tests.bus.conformance import BusConformance, MakeBus, drain, ident, logged, nothing_more, write


class TestEmbeddedBus(BusConformance):
    @pytest.fixture
    def make_bus(self, store: Store) -> MakeBus:
        def make(partitions: int = 1, lease_seconds: float = 15.0) -> EmbeddedBus:
            return EmbeddedBus(store, partitions=partitions, lease_seconds=lease_seconds, poll_interval=0.01)

        return make


@pytest.mark.postgres
class TestEmbeddedBusOnPostgres(TestEmbeddedBus):
    """The same suite with the store in PostgreSQL: checkpoints and leases there, workers in several processes."""

    @pytest.fixture
    def store(self, postgres_schema_url: str) -> Iterator[Store]:
        with open_store(postgres_schema_url) as store:
            yield store


def test_no_url_is_the_embedded_bus(store: Store) -> None:
    bus = open_bus(None, store)
    assert isinstance(bus, EmbeddedBus) and bus.partitions == 1
    bus = open_bus("embedded://?partitions=4&lease_seconds=5", store)
    assert isinstance(bus, EmbeddedBus) and (bus.partitions, bus.lease_seconds) == (4, 5.0)


@pytest.mark.parametrize(("url", "problem"), [
    ("kafka://x:9092", "unsupported scheme 'kafka'"),
    ("nats://127.0.0.1:4222?partitons=2", "unknown option 'partitons'"),
    ("nats://127.0.0.1:4222?partitions=two", "partitions' must be a int"),
    ("embedded://?stream=X", "unknown option 'stream'"),
    ("nats://127.0.0.1:4222?partitions=0", "between 1 and 1024"),
])
def test_bad_urls_are_named(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_bus_url(url)



def test_one_worker_of_many_partitions_reads_a_long_log_exactly_once(store: Store) -> None:
    """Past the reading window: each partition's share of thousands of changes, once each, in log order."""
    for start in range(0, 6000, 2000):
        write(store, "item", [f"I{n:05}" for n in range(start, start + 2000)])
    write(store, "item", [f"I{n:05}" for n in range(0, 6000, 7)], revision=1)
    bus = EmbeddedBus(store, partitions=3, poll_interval=0.01)
    with bus.subscribe("planning") as sub:
        got = drain(sub, expected=len(logged(store)), max_messages=700)[sub.worker]
        nothing_more(sub)
    assert sorted(ident(m) for m in got) == sorted(logged(store))
    for partition in range(3):
        mine = [m.seq for m in got if partition_of(m.entity, m.key, 3) == partition]
        assert mine == sorted(mine)


def test_a_consumer_keeps_its_partition_count(store: Store) -> None:
    EmbeddedBus(store, partitions=2).subscribe("planning").close()
    with pytest.raises(ConfigError, match="keeps its progress in 2 partitions, not 4"):
        EmbeddedBus(store, partitions=4).subscribe("planning")
    EmbeddedBus(store, partitions=2).delete_consumer("planning")
    EmbeddedBus(store, partitions=4).subscribe("planning").close()  # started over


@pytest.mark.parametrize(("name", "problem"), [("relay", "reserved"), ("a.b", "letters, digits"), ("", "letters")])
def test_consumer_names_are_checked(store: Store, name: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        EmbeddedBus(store).subscribe(name)
