"""Flow tests run against a real SQLite store in the test's temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncfabric.sandbox.planning_platform import create_app
from syncfabric.store import Store, open_store
from tests.fixtures import served


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path}/s.db") as opened:
        yield opened


base_url = served(create_app)
"""The simulated planning platform over real HTTP on 127.0.0.1 (one server per test module); ``control`` is its
sandbox control surface (:mod:`tests.fixtures`)."""
