"""Environment overrides: applied before validation, located by their variable's name when wrong."""

from __future__ import annotations

import pytest

from syncfabric.config import load_estate, validate_estate_file
from syncfabric.errors import ConfigError
from tests.config.conftest import VALID
from tests.config.fake_connector import FakeConfig


def test_store_override(write_estate, tmp_path) -> None:
    loaded = load_estate(write_estate(VALID), environ={"SYNCFABRIC__STORE": "sqlite:///other/x.db"})

    assert loaded.estate.store == "sqlite:///other/x.db"
    assert loaded.store_url == f"sqlite:///{(tmp_path / 'other' / 'x.db').as_posix()}"


def test_bus_override_is_validated(write_estate) -> None:
    loaded = load_estate(write_estate(VALID), environ={"SYNCFABRIC__BUS": "nats://10.0.0.5:4222?partitions=16"})
    assert loaded.estate.bus == "nats://10.0.0.5:4222?partitions=16"
    with pytest.raises(ConfigError, match="partitions must be between 1 and 1024"):
        load_estate(write_estate(VALID), environ={"SYNCFABRIC__BUS": "nats://10.0.0.5:4222?partitions=0"})


def test_connection_field_override_matches_names_without_case(write_estate) -> None:
    text = VALID.replace("  planner:", "  plan-eu.main:").replace("system: planner", "system: plan-eu.main")
    environ = {
        "SYNCFABRIC__SYSTEMS__ERP__CONNECTION__PORT": "9443",
        "syncfabric__systems__Plan_EU_Main__connection__URL": "https://plan.other.test",
        "SYNCFABRIC__SYSTEMS__PLAN_EU_MAIN__CONNECTION__VERIFY_TLS": "false",
    }

    loaded = load_estate(write_estate(text), environ=environ)

    assert loaded.connection("erp") == FakeConfig(url="https://erp.example.test", port=9443)
    assert loaded.connection("plan-eu.main") == FakeConfig(url="https://plan.other.test", verify_tls=False)


def test_override_adds_a_connection_the_file_lacks(write_estate) -> None:
    text = VALID.replace("    connection: {url: https://plan.example.test}\n", "")
    environ = {"SYNCFABRIC__SYSTEMS__PLANNER__CONNECTION__URL": "https://plan.env.test"}

    assert load_estate(write_estate(text), environ=environ).connection("planner").url == "https://plan.env.test"


def test_invalid_override_value_is_located_by_its_variable(write_estate) -> None:
    path = write_estate(VALID)
    environ = {"SYNCFABRIC__SYSTEMS__ERP__CONNECTION__PORT": "eighty"}

    assert validate_estate_file(path, environ=environ) == [
        "SYNCFABRIC__SYSTEMS__ERP__CONNECTION__PORT: expected `int`, got `str` @ $.systems.erp.connection.port"
    ]


def test_override_for_unknown_system_or_path(write_estate) -> None:
    path = write_estate(VALID)
    environ = {
        "SYNCFABRIC__SYSTEMS__CRM__CONNECTION__URL": "https://crm.test",
        "SYNCFABRIC__FLOWS__ITEMS_IN__BATCH_SIZE": "5",
        "SYNCFABRIC_HOME": "/elsewhere",  # not an override: one underscore
    }

    with pytest.raises(ConfigError) as caught:
        load_estate(path, environ=environ)

    assert caught.value.problems == [
        "SYNCFABRIC__FLOWS__ITEMS_IN__BATCH_SIZE: unknown override: expected SYNCFABRIC__STORE, SYNCFABRIC__BUS or "
        "SYNCFABRIC__SYSTEMS__<NAME>__CONNECTION__<FIELD>",
        "SYNCFABRIC__SYSTEMS__CRM__CONNECTION__URL: no system named 'CRM' in the estate; "
        "systems: erp (ERP), planner (PLANNER)",
    ]


def test_overrides_are_validated_like_the_file(write_estate) -> None:
    path = write_estate(VALID)
    environ = {"SYNCFABRIC__SYSTEMS__ERP__CONNECTION__PROXY": "http://proxy.test"}

    (problem,) = validate_estate_file(path, environ=environ)

    assert problem.startswith("SYNCFABRIC__SYSTEMS__ERP__CONNECTION__PROXY: unknown field 'proxy'")
    assert problem.endswith("@ $.systems.erp.connection.proxy")
