"""Flow tests run against a real SQLite store in the test's temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syncfabric.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path}/s.db") as opened:
        yield opened


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The simulated planning platform over real HTTP on 127.0.0.1 (one server per test module)."""
    from syncfabric.sandbox.planning_platform import create_app
    from syncfabric.sandbox.server import serve

    with serve(create_app()) as url:
        yield url


@pytest.fixture
def control(base_url: str) -> Iterator[httpx.Client]:
    """The platform's sandbox control surface (faults, journal), reset before each test."""
    with httpx.Client(base_url=f"{base_url}/api/_sandbox") as client:
        client.post("/reset").raise_for_status()
        yield client
