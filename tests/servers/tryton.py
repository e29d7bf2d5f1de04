"""A Tryton ERP server for the tests marked ``tryton``.

Tryton runs from its own virtual environment (``.venv-tryton`` beside ``pyproject.toml``, or
``SYNCFABRIC_TRYTON_VENV``), which ``scripts/test`` creates with trytond 8.2 and the product, stock, purchase and
production modules. The server itself (the cached initialised database in ``.cache/tryton/<versions>/``, trytond
on a copy at a free port of 127.0.0.1) is :mod:`syncfabric.sandbox.tryton_server`, which the demo uses too.

Preparation starts in a background thread as soon as collection selects a Tryton test, so the other tests run
meanwhile; nothing happens when none is selected. Without the Tryton environment the tests are skipped, or fail
when ``CI`` is set, so that CI never goes green by skipping them.

Fixture ``tryton_server`` (session): a :class:`TrytonServer` with ``url``, ``database``, ``user``, ``password``
and the server's ``pid``.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator

import pytest

from syncfabric.sandbox.tryton_server import LocalTryton, TrytonServer, TrytonUnavailable, available
from tests.servers.common import unavailable

__all__ = ["TrytonServer", "tryton_server"]

MISSING = "the Tryton environment is missing (.venv-tryton with trytond): run scripts/test to create it"


class _Starter:
    """Prepares the server in a background thread; the fixture waits for it."""

    def __init__(self) -> None:
        self.server = LocalTryton()
        self.result: TrytonServer | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="tryton-start", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.server.start()
        except BaseException as exc:  # handed to the fixture, which fails with it
            self.error = exc

    def wait(self) -> TrytonServer:
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


_starter: _Starter | None = None


@pytest.hookimpl(trylast=True)  # after -m / -k deselection: start only for tests that will run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    global _starter
    wanted = [item for item in items if "tryton" in item.keywords]
    if not wanted:
        return
    if not available():
        if os.environ.get("CI"):
            return  # the fixture fails loudly instead
        skip = pytest.mark.skip(reason=MISSING)
        for item in wanted:
            item.add_marker(skip)
        return
    if _starter is None and not config.option.collectonly:
        _starter = _Starter()


@pytest.fixture(scope="session")
def tryton_server() -> Iterator[TrytonServer]:
    global _starter
    if not available():
        unavailable(MISSING)
    starter = _starter or _Starter()
    _starter = None
    try:
        server = starter.wait()
    except (TrytonUnavailable, OSError, subprocess.SubprocessError) as exc:
        starter.server.stop()
        pytest.fail(f"could not start a Tryton server for the tests: {exc}", pytrace=False)
    try:
        yield server
    finally:
        starter.server.stop()


def pytest_unconfigure(config: pytest.Config) -> None:
    """A server prepared for tests that were then deselected or skipped is stopped too."""
    global _starter
    if _starter is not None:
        _starter.thread.join()
        _starter.server.stop()
        _starter = None
