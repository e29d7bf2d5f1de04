"""A connector kind that exists only for the estate tests: it needs a URL, takes a port, and a token."""

from __future__ import annotations

import msgspec

from syncfabric.connectors.base import Connector


class FakeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: str
    """Where the system listens."""
    port: int = 443
    verify_tls: bool = True


class FakeConnector(Connector):
    kind = "fake"
    config_type = FakeConfig
    secret_names = ("token", "password")
