"""The ``syncfabric`` command line: the app lives in ``common``, each command group in a module of its own.
Importing a module registers its commands; the order below is the order ``--help`` lists them in."""

from __future__ import annotations

# isort: off
from syncfabric.cli import estate, sync, status, events, quarantine, mapping, replay, bus, plan, demo  # noqa: F401
# isort: on
from syncfabric.cli.common import app, console, errors

__all__ = ["app", "console", "errors"]
