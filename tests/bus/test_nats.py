"""The NATS JetStream bus against a real nats-server: the conformance suite, plus what only it does."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from syncfabric.bus import open_bus
from syncfabric.bus.nats import NatsBus
from syncfabric.store import Store
from tests.bus.conformance import BusConformance, MakeBus

pytestmark = pytest.mark.nats


@pytest.fixture
def make_bus(store: Store, nats_url: str) -> Iterator[MakeBus]:
    made: list[NatsBus] = []

    def make(partitions: int = 1, lease_seconds: float = 15.0, **options: object) -> NatsBus:
        stream = options.pop("stream", None) or f"T{uuid.uuid4().hex[:12]}"
        bus = NatsBus(nats_url, store, partitions=partitions, lease_seconds=lease_seconds, stream=stream,
                      ack_wait=5.0, **options)  # type: ignore[arg-type]
        made.append(bus)
        return bus

    yield make
    for bus in made:
        with contextlib.suppress(Exception):
            bus.call("delete the test stream", bus._js.delete_stream(bus.stream))
        bus.close()


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
