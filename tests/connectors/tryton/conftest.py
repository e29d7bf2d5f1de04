"""Fixtures for the Tryton connector's tests against the real server the session starts.

``tryton_connector`` yields an open connector and ``tryton_seed`` a seeding API: together they are what a
connector conformance kit needs to run its checks against Tryton too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.connectors.tryton.seed import Seeder

from syncfabric.config import load_estate
from syncfabric.connectors.tryton.configuration import TrytonConfig
from syncfabric.connectors.tryton.connector import TrytonConnector
from syncfabric.flows.runtime import Runtime

ESTATE = Path(__file__).resolve().parents[3] / "examples" / "tryton" / "estate.yaml"


@pytest.fixture
def tryton_seed(tryton_server) -> Iterator[Seeder]:
    seeder = Seeder(tryton_server.url, tryton_server.database, tryton_server.user, tryton_server.password)
    try:
        yield seeder
    finally:
        seeder.close()


def connector_for(server, **settings) -> TrytonConnector:
    config = TrytonConfig(url=server.url, database=server.database, user=server.user, **settings)
    return TrytonConnector("erp-tryton", config, {"password": server.password})


@pytest.fixture
def tryton_connector(tryton_server, tryton_seed) -> Iterator[TrytonConnector]:
    """An open connector, logged in as a user whose company is set up (by ``tryton_seed``)."""
    with connector_for(tryton_server) as connector:
        yield connector


def estate_environ(server, store: Path, **connection: str) -> dict[str, str]:
    environ = {
        "TRYTON_PASSWORD": server.password,
        "SYNCFABRIC__STORE": f"sqlite:///{store}",
        "SYNCFABRIC__SYSTEMS__ERP_TRYTON__CONNECTION__URL": server.url,
        "SYNCFABRIC__SYSTEMS__ERP_TRYTON__CONNECTION__DATABASE": server.database,
    }
    environ.update({f"SYNCFABRIC__SYSTEMS__ERP_TRYTON__CONNECTION__{name.upper()}": value
                    for name, value in connection.items()})
    return environ


@pytest.fixture
def tryton_runtime(tryton_server, tryton_seed, tmp_path) -> Iterator[Runtime]:
    """The example estate (examples/tryton/estate.yaml) pointed at the test server, with its own store."""
    loaded = load_estate(ESTATE, environ=estate_environ(tryton_server, tmp_path / "store.db"))
    with Runtime(loaded) as runtime:
        yield runtime
