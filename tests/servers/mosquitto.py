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
the path of the binary for tests that start (and stop, and restart) a broker of their own with :func:`start_broker`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.common import free_port, skip_unless_available

ENV = "SYNCFABRIC_TEST_MQTT"
MISSING = "mosquitto not found: install Debian's mosquitto package"


def find_mosquitto() -> str | None:
    for candidate in ("/usr/sbin/mosquitto", shutil.which("mosquitto")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    log: Path | None = None

    def log_tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])



def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def start_broker(binary: str, root: Path, port: int = 0, *, anonymous: bool = True
                 ) -> tuple[subprocess.Popen[bytes], Broker]:
    """Start mosquitto with its configuration, log and persistence in ``root``; on ``port``, or a free one.
    ``anonymous=False``: every client is refused (no password file), to test how refusals are reported."""
    log = root / "mosquitto.log"
    fixed = port
    for attempt in range(3):
        port = fixed or free_port()
        lines = [
            f"listener {port} 127.0.0.1",
            f"allow_anonymous {'true' if anonymous else 'false'}",
            "persistence true",
            f"persistence_location {root}/",
            "max_inflight_messages 1000",
            "max_queued_messages 1000000",
            f"log_dest file {log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            lines.append("user root")  # otherwise it drops to user mosquitto, who cannot write the temp folder
        config = root / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if _wait_listening(port, process):
            return process, Broker("127.0.0.1", port, log)
        process.kill()
        process.wait()
        if attempt == 2:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"mosquitto did not start: {stderr}\n{Broker('', 0, log).log_tail()}")
    raise AssertionError("unreachable")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    available = bool(os.environ.get(ENV) or find_mosquitto() is not None)
    skip_unless_available(items, "mosquitto", available=available, reason=MISSING)


@pytest.fixture(scope="session")
def mosquitto_binary() -> str:
    binary = find_mosquitto()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING, pytrace=False)
        pytest.skip(MISSING)
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
        if os.environ.get("CI"):
            pytest.fail(MISSING, pytrace=False)
        pytest.skip(MISSING)
    root = Path(tempfile.mkdtemp(prefix="syncfabric-mqtt-"))
    try:
        process, broker = start_broker(binary, root)
    except (RuntimeError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start a mosquitto broker for the tests: {exc}", pytrace=False)
    try:
        yield broker
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


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
