"""Shared fixtures. Real servers (PostgreSQL, ...) are started by plugins in ``tests/servers/``; sandbox systems,
SQL databases and estates driven through the command line come from ``tests/fixtures.py``."""

from __future__ import annotations

pytest_plugins = ["tests.servers.postgres", "tests.servers.mosquitto", "tests.servers.nats",
                  "tests.servers.tryton", "tests.fixtures"]
