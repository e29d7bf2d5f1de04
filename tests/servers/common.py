"""What every test-server plugin does the same way: pick a free port on 127.0.0.1, skip the tests of a marker when
its server cannot be had here (never in CI: there the fixture fails loudly instead), and start and stop a server for
the session."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any, NoReturn, Protocol

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unavailable(reason: str) -> NoReturn:
    """In a fixture whose server cannot be had here: skip its tests, or fail them in CI."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


class Server(Protocol):
    def start(self) -> Any: ...

    def stop(self) -> None: ...


def running(server: Server, name: str, errors: tuple[type[BaseException], ...]) -> Iterator[Any]:
    """For a session fixture (``yield from running(...)``): what ``server.start()`` returns, the server stopped at
    the end; a start raising one of ``errors`` fails the fixture, naming the server (``name``)."""
    try:
        started = server.start()
    except errors as exc:
        server.stop()
        pytest.fail(f"could not start {name} for the tests: {exc}", pytrace=False)
    try:
        yield started
    finally:
        server.stop()


def skip_unless_available(items: list[pytest.Item], marker: str, *, available: bool, reason: str) -> None:
    """Mark the collected tests carrying ``marker`` skipped when their server is not ``available``, except in CI."""
    if available or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if marker in item.keywords:
            item.add_marker(skip)
