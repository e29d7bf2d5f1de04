"""Shared fixtures. Real servers (PostgreSQL, ...) are started by plugins in ``tests/servers/``."""

from __future__ import annotations

pytest_plugins = ["tests.servers.postgres", "tests.servers.mosquitto", "tests.servers.nats",
                  "tests.servers.tryton"]
