"""Events and estates for the event-ingest tests: the example plant estate, pointed at the test's broker."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import ClassVar

from tests.servers.mosquitto import Broker, publish

EXAMPLE = Path(__file__).parents[2] / "examples" / "plant-events" / "estate.yaml"
SECRET = "whsec-test-0123456789"


def downtime(number: int, site: str = "P100", **changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": f"DT-{number:06d}", "occurred_at": "2026-03-02T06:15:00Z", "location_id": site,
        "work_center_id": f"WC-{number % 7}", "started_at": "2026-03-02T06:10:00Z", "reason_code": "BREAKDOWN",
    }
    event.update(changes)
    return event


def milestone(number: int, **changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "shipment_id": f"SH-{number:05d}", "milestone": "departed", "occurred_at": "2026-03-02T08:00:00Z",
        "place": "DEHAM", "carrier": "OceanLine",
    }
    event.update(changes)
    return event


class PlantEstate:
    """The example estate in a temporary folder, with its own MQTT client ids and topics on the shared broker."""

    def __init__(self, folder: Path, broker: Broker | None = None, *, webhook_port: int = 0) -> None:
        self.folder = folder
        self.tag = f"t{uuid.uuid4().hex[:8]}"
        self.path = folder / "estate.yaml"
        text = EXAMPLE.read_text()
        text = text.replace("source: mfg/machine/down/+", f"source: {self.tag}/mfg/machine/down/+")
        self.path.write_text(text)
        self.environ = {"LOGISTICS_WEBHOOK_SECRET": SECRET,
                        "SYNCFABRIC__SYSTEMS__PLANT_MES__CONNECTION__CLIENT_ID": self.tag}
        if broker is not None:
            self.environ["SYNCFABRIC__SYSTEMS__PLANT_MES__CONNECTION__HOST"] = broker.host
            self.environ["SYNCFABRIC__SYSTEMS__PLANT_MES__CONNECTION__PORT"] = str(broker.port)
        if webhook_port:
            self.environ["SYNCFABRIC__SYSTEMS__LOGISTICS__CONNECTION__PORT"] = str(webhook_port)
        self.store_url = f"sqlite:///{folder}/.syncfabric/syncfabric.db"

    def downtime_topic(self, site: str) -> str:
        return f"{self.tag}/mfg/machine/down/{site}"

    def downtime_messages(self, numbers: range, site: str = "P100") -> list[tuple[str, bytes]]:
        return [(self.downtime_topic(site), json.dumps(downtime(n, site)).encode()) for n in numbers]


class Plant:
    """A plant publishing the downtime events ``0 .. total-1`` of ``estate`` (site ``P0`` for the first thousand,
    ``P1`` for the next, ...) with QoS 1 on a thread of its own, in slices of ``step`` a short pause apart. The
    first ``first`` events go at once, the rest once :meth:`go_on` is called: what a test does in between (kill a
    process) happens while events are on their way and more are still to come, however loaded the machine is."""

    def __init__(self, broker: Broker, estate: PlantEstate, total: int, *, first: int | None = None,
                 step: int = 250) -> None:
        self.broker, self.estate, self.total, self.step = broker, estate, total, step
        self.first = total if first is None else first
        self._go_on = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="plant", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for start in range(0, self.total, self.step):
                if start >= self.first and not self._go_on.wait(120):
                    raise TimeoutError(f"held back after {self.first} events, and never told to go on")
                numbers = range(start, min(start + self.step, self.total))
                publish(self.broker, self.estate.downtime_messages(numbers, f"P{start // 1000}"))
                time.sleep(0.02)
        except BaseException as exc:  # handed to join
            self.error = exc

    def go_on(self) -> None:
        self._go_on.set()

    def join(self, timeout: float = 120.0) -> None:
        """Return once the broker acknowledged every event; fail with what stopped the plant, or after ``timeout``."""
        self.go_on()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the plant did not publish its {self.total} events within {timeout:.0f} s")
        if self.error is not None:
            raise AssertionError(f"the plant stopped publishing: {self.error!r}") from self.error


class Hub:
    """``syncfabric listen`` in a process of its own, as an operator runs it, in a process group of its own with
    whatever it starts (worker processes and their fork server): both its outputs are read as they come, so that
    it never blocks on a full pipe, and the group is killed when the test ends (see ``tests/events/conftest.py``),
    so that a test that fails leaves nothing running."""

    started: ClassVar[list[Hub]] = []
    """Every hub started and not yet cleaned up after its test."""

    def __init__(self, estate: PlantEstate, *flows: str) -> None:
        env = {**os.environ, **estate.environ}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "syncfabric.cli", "listen", *flows, "--estate", str(estate.path)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=estate.folder,
            start_new_session=True,
        )
        Hub.started.append(self)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.errors: list[str] = []
        self._readers = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._read_errors, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def _read_errors(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.errors.append(line)

    def wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if line.startswith("listening:"):
                return
        raise AssertionError(f"hub did not start listening within {timeout:.0f} s:\n{self.stop()}")

    def stop(self, timeout: float = 60.0) -> str:
        """SIGTERM, as a service manager stops it; its output and error output. A hub that has not stopped within
        ``timeout`` (longer than it gives its workers) is killed with all it started; its output then ends with
        a line saying so."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()
            self.errors.append(f"[test] hub did not stop within {timeout:.0f} s of SIGTERM: killed\n")
        self._drain()
        return "".join(self.output) + "".join(self.errors)

    def kill(self) -> None:
        """SIGKILL to the hub alone: what it started has to notice by itself."""
        self.process.kill()
        self.process.wait()

    def kill_all(self) -> None:
        """SIGKILL to the hub and every process it started that is still there."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def _drain(self, timeout: float = 10.0) -> None:
        """Wait for both outputs to end: they end once the hub and what it started have all exited."""
        deadline = time.monotonic() + timeout
        for reader in self._readers:
            reader.join(max(deadline - time.monotonic(), 0.0))
        if any(reader.is_alive() for reader in self._readers):
            self.kill_all()  # a worker outlived the hub: the output would never end
            for reader in self._readers:
                reader.join(5.0)


def wait_for(condition, timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
