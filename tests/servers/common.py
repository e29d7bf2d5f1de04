"""What every test-server plugin does the same way: pick a free port on 127.0.0.1, and skip the tests of a marker
when its server cannot be had here (never in CI: there the fixture fails loudly instead)."""

from __future__ import annotations

import os
import socket

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def skip_unless_available(items: list[pytest.Item], marker: str, *, available: bool, reason: str) -> None:
    """Mark the collected tests carrying ``marker`` skipped when their server is not ``available``, except in CI."""
    if available or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if marker in item.keywords:
            item.add_marker(skip)
