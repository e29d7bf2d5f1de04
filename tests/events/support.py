"""Events and estates for the event-ingest tests: the example plant estate, pointed at the test's broker."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from tests.servers.mosquitto import Broker

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


class Hub:
    """``syncfabric listen`` in a process of its own, as an operator runs it."""

    def __init__(self, estate: PlantEstate, *flows: str) -> None:
        env = {**os.environ, **estate.environ}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "syncfabric.cli", "listen", *flows, "--estate", str(estate.path)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=estate.folder,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

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
        raise AssertionError(f"hub did not start listening:\n{self.stop()}")

    def stop(self, timeout: float = 20.0) -> str:
        """SIGTERM, as a service manager stops it; its output and error output."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        time.sleep(0.05)
        stderr = self.process.stderr.read() if self.process.stderr else ""
        return "".join(self.output) + stderr

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def wait_for(condition, timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
