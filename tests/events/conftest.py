"""No hub outlives its test: a test that fails (or times out) half-way leaves no ``listen`` process, worker or
broker client running into the next test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.events.support import Hub


@pytest.fixture(autouse=True)
def _hubs_end_with_their_test() -> Iterator[None]:
    yield
    while Hub.started:
        Hub.started.pop().kill_all()
