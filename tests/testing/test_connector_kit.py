"""The contract kit finds what it is meant to find: a connector that breaks the contract fails it."""

from __future__ import annotations

import msgspec
import pytest

from syncfabric.connectors.base import Capability, Connector, OutboundRecord, WriteOutcome
from syncfabric.testing.connector_kit import ConnectorContract, _fields


class Documented(msgspec.Struct):
    url: str
    """Where the system is."""


class Careless(msgspec.Struct):
    url: str
    password: str = ""
    nested: Documented | None = None
    retries: int = 3


class Liar(Connector):
    kind = "liar"
    capabilities = Capability.READ_FULL | Capability.WRITE
    config_type = Careless

    def write(self, entity: str, records: list[OutboundRecord]) -> WriteOutcome:  # type: ignore[override]
        return WriteOutcome(accepted=[record.key for record in records])


class Kit(ConnectorContract):
    def make_connector(self) -> Connector:
        return Liar("liar", Careless(url="http://x", password="hunter22"), {"password": "hunter22"})


def test_undeclared_or_unimplemented_capabilities_fail_the_kit() -> None:
    with pytest.raises(AssertionError, match="READ_FULL is declared but read_full is not implemented"):
        Kit().test_declared_capabilities_match_implemented_methods(Kit().make_connector())


def test_undocumented_fields_and_secrets_in_configuration_fail_the_kit() -> None:
    found = {(owner, name): doc for owner, name, doc in _fields(Careless)}
    assert found == {("Careless", "url"): None, ("Careless", "password"): None, ("Careless", "nested"): None,
                     ("Documented", "url"): "Where the system is.", ("Careless", "retries"): None}
    with pytest.raises(AssertionError, match=r"without a description: Careless\.url"):
        Kit().test_configuration_fields_are_documented()
    with pytest.raises(AssertionError, match=r"Careless\.password"):
        Kit().test_secrets_are_not_configuration()


def test_syncfabric_runs_without_pytest() -> None:
    import subprocess
    import sys

    code = ("import sys, syncfabric.cli, syncfabric.flows.runtime, syncfabric.connectors.odata.connector; "
            "sys.exit('pytest' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
