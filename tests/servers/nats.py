"""A NATS server with JetStream for the tests marked ``nats``.

- ``SYNCFABRIC_TEST_NATS_URL`` set: that server is used (it must have JetStream enabled).
- Otherwise the session starts Debian's ``nats-server`` (``-js``) on 127.0.0.1 on a free port with its store in a
  temporary folder, and stops it when the session ends.
- No ``nats-server`` binary: the nats-marked tests are skipped, or fail when ``CI`` is set, so that CI never goes
  green by skipping them.

Fixture: ``nats_url`` (session): the ``nats://`` URL of a server the session may use freely.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncfabric.sandbox import processes
from tests.servers.common import free_port, running, skip_unless_available, unavailable

ENV_URL = "SYNCFABRIC_TEST_NATS_URL"
MISSING = "nats-server not found: install Debian's nats-server package"


def find_binary() -> str | None:
    return shutil.which("nats-server") or next(
        (str(p) for p in (Path("/usr/sbin/nats-server"), Path("/usr/bin/nats-server")) if p.exists()), None
    )



class NatsServer:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="syncfabric-nats-"))
        self.log = self.root / "server.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> str:
        for attempt in range(3):
            self.port = self.port if attempt == 0 and self.port else free_port()
            command = [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.root / "js"),
                       "-l", str(self.log)]
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._ready():
                return self.url
            self.stop_process()
        raise RuntimeError(f"nats-server did not start:\n{self._log_tail()}")

    def _ready(self, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"INFO"):
                        return "JetStream" in self._log_tail() or self._wait_log("Server is ready", deadline)
            except OSError:
                time.sleep(0.05)
        return False

    def _wait_log(self, text: str, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if text in self._log_tail():
                return True
            time.sleep(0.05)
        return False

    def _log_tail(self) -> str:
        return processes.log_tail(self.log)

    def stop_process(self) -> None:
        processes.stop_process(self.process)
        self.process = None

    def stop(self) -> None:
        try:
            self.stop_process()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    available = bool(os.environ.get(ENV_URL) or find_binary() is not None)
    skip_unless_available(items, "nats", available=available, reason=MISSING)


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    given = os.environ.get(ENV_URL)
    if given:
        yield given
        return
    binary = find_binary()
    if binary is None:
        unavailable(MISSING)
    yield from running(NatsServer(binary), "a NATS server", (RuntimeError, OSError))
