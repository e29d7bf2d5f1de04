"""A local mosquitto MQTT broker for the demo (and the tests): on 127.0.0.1 at a free port, its configuration,
log and persistence in a folder of its own, anonymous clients allowed, up to 1000 unacknowledged messages in flight
per client (the default 20 would cap every batch at 20). Needs Debian's ``mosquitto`` binary; nothing is
installed here."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from syncfabric.sandbox import processes


def find_mosquitto() -> str | None:
    """The mosquitto binary, or None when it is not installed."""
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
        return processes.log_tail(self.log)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    ``anonymous=False``: every client is refused (no password file), to test how refusals are reported.
    RuntimeError with mosquitto's own words when it does not start."""
    log = root / "mosquitto.log"
    fixed = port
    for attempt in range(3):
        port = fixed or _free_port()
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


def stop_broker(process: subprocess.Popen[bytes]) -> None:
    processes.stop_process(process, timeout=10)


@contextmanager
def running_broker(binary: str) -> Iterator[Broker]:
    """A broker in a temporary folder for the length of the block; stopped and its folder removed after."""
    root = Path(tempfile.mkdtemp(prefix="syncfabric-mqtt-"))
    try:
        process, broker = start_broker(binary, root)
        try:
            yield broker
        finally:
            stop_broker(process)
    finally:
        shutil.rmtree(root, ignore_errors=True)
