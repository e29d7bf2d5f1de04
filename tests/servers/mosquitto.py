"""A mosquitto MQTT broker for the tests marked ``mosquitto``.

- ``SYNCFABRIC_TEST_MQTT`` set (``host:port``): that broker is used (a CI service); it must allow anonymous
  clients and keep persistent sessions.
- Otherwise the session starts Debian's ``mosquitto`` with a generated configuration in a temporary folder: one
  listener on 127.0.0.1 at a free port, anonymous clients allowed, persistence on in that folder, up to 1000
  unacknowledged messages in flight per client (the default 20 would cap every batch at 20). It is stopped when
  the session ends.
- No binary: the mosquitto-marked tests are skipped, or fail when ``CI`` is set, so that CI never goes green by
  skipping them.

Fixtures: ``mosquitto`` (session), a :class:`Broker` with ``host``, ``port`` and the log file; ``mosquitto_binary``,
the path of the binary for tests that start (and stop, and restart) a broker of their own with :func:`start_broker`
(from :mod:`syncfabric.sandbox.mosquitto`, which the demo uses too).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from syncfabric.sandbox.mosquitto import Broker, find_mosquitto, running_broker, start_broker
from tests.servers.common import skip_unless_available, unavailable

__all__ = ["Broker", "find_mosquitto", "publish", "start_broker"]

ENV = "SYNCFABRIC_TEST_MQTT"
MISSING = "mosquitto not found: install Debian's mosquitto package"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    available = bool(os.environ.get(ENV) or find_mosquitto() is not None)
    skip_unless_available(items, "mosquitto", available=available, reason=MISSING)


@pytest.fixture(scope="session")
def mosquitto_binary() -> str:
    binary = find_mosquitto()
    if binary is None:
        unavailable(MISSING)
    return binary


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Broker]:
    given = os.environ.get(ENV)
    if given:
        host, _, port = given.rpartition(":")
        yield Broker(host or "127.0.0.1", int(port))
        return
    binary = find_mosquitto()
    if binary is None:
        unavailable(MISSING)
    try:
        with running_broker(binary) as broker:
            yield broker
    except (RuntimeError, OSError) as exc:
        pytest.fail(f"could not start a mosquitto broker for the tests: {exc}", pytrace=False)


def publish(broker: Broker, messages: list[tuple[str, bytes]], *, timeout: float = 30.0) -> None:
    """Publish with QoS 1 as a plant system would, returning once the broker acknowledged every message."""
    import uuid

    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-publisher-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(timeout=max(deadline - time.monotonic(), 0.1))
            if not info.is_published():
                raise TimeoutError(f"broker did not acknowledge message {info.mid} within {timeout} s")
    finally:
        client.disconnect()
        client.loop_stop()
