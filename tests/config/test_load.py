"""A valid estate loads: store path, typed connections, secrets read at call time and never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

import syncfabric.config as config
from syncfabric.config import LoadedEstate, load_estate, resolve_store_url, validate_estate_file
from syncfabric.errors import ConfigError
from tests.config.conftest import VALID
from tests.config.fake_connector import FakeConfig


def test_a_valid_estate_loads(write_estate) -> None:
    path = write_estate(VALID)

    loaded = load_estate(path, environ={})

    assert validate_estate_file(path, environ={}) == []
    assert loaded.estate.name == "test-estate"
    assert loaded.path == path
    assert loaded.base_dir == path.parent.resolve()
    assert set(loaded.estate.flows) == {"items-in", "stock-in", "to-planning"}
    assert loaded.estate.flows["items-in"].batch_size == 500
    assert loaded.estate.mappings["erp-stock"].fields["on_hand"] == {"value": "QTY", "unit": "UOM"}
    assert loaded.estate.domains["items"].sla.completeness == 0.99


def test_connection_decodes_into_the_kinds_configuration(write_estate) -> None:
    loaded = load_estate(write_estate(VALID), environ={})

    assert loaded.connection("erp") == FakeConfig(url="https://erp.example.test", port=8443)
    assert loaded.connection("planner") == FakeConfig(url="https://plan.example.test")


def test_relative_sqlite_path_is_relative_to_the_estate_folder(write_estate, tmp_path: Path) -> None:
    loaded = load_estate(write_estate(VALID), environ={})

    assert loaded.store_url == f"sqlite:///{(tmp_path / 'data' / 'sf.db').as_posix()}"
    assert loaded.estate.store == "sqlite:///data/sf.db"


@pytest.mark.parametrize("url", ["sqlite:////var/lib/sf.db", "sqlite:///:memory:", "sqlite://",
                                 "postgresql://db.example.test/syncfabric"])
def test_other_store_urls_are_kept(url: str, tmp_path: Path) -> None:
    assert resolve_store_url(url, tmp_path) == url


def test_sqlite_url_keeps_its_query(tmp_path: Path) -> None:
    resolved = resolve_store_url("sqlite:///sf.db?timeout=5", tmp_path)

    assert resolved == f"sqlite:///{(tmp_path / 'sf.db').resolve().as_posix()}?timeout=5"


def test_default_store_is_beside_the_estate_file(write_estate, tmp_path: Path) -> None:
    loaded = load_estate(write_estate(VALID.replace("store: sqlite:///data/sf.db\n", "")), environ={})

    assert loaded.store_url == f"sqlite:///{(tmp_path / '.syncfabric' / 'syncfabric.db').as_posix()}"


def test_secrets_are_read_from_the_environment_when_asked(write_estate) -> None:
    environ: dict[str, str] = {}
    loaded = load_estate(write_estate(VALID), environ=environ)
    environ["ERP_TOKEN"] = "rotated-value"

    assert loaded.secrets("erp") == {"token": "rotated-value"}
    assert loaded.secrets("planner") == {}


def test_missing_secret_variable_names_system_credential_and_variable(write_estate) -> None:
    loaded = load_estate(write_estate(VALID), environ={})

    with pytest.raises(ConfigError) as caught:
        loaded.secrets("erp")

    (problem,) = caught.value.problems
    assert "'erp'" in problem and "'token'" in problem and "ERP_TOKEN" in problem


def test_unknown_system_is_a_config_error(write_estate) -> None:
    loaded = load_estate(write_estate(VALID), environ={})

    with pytest.raises(ConfigError, match="no system 'crm'"):
        loaded.secrets("crm")


def test_secret_values_are_not_in_repr(write_estate) -> None:
    text = VALID.replace("store: sqlite:///data/sf.db\n", "")
    environ = {"ERP_TOKEN": "tok-9f8e7d", "SYNCFABRIC__STORE": "postgresql://sf:pw-5a4b3c@db.example.test/sf"}
    loaded = load_estate(write_estate(text), environ=environ)
    assert loaded.secrets("erp") == {"token": "tok-9f8e7d"}

    shown = repr(loaded) + str(loaded)

    assert "tok-9f8e7d" not in shown
    assert "pw-5a4b3c" not in shown
    assert "postgresql://sf:***@db.example.test/sf" in shown


def test_public_surface() -> None:
    assert set(config.__all__) == {
        "Domain", "EnvRef", "Estate", "Flow", "LoadedEstate", "Mapping", "Sla", "System",
        "estate_json_schema", "load_estate", "resolve_store_url", "validate_estate_file",
    }
    assert config.LoadedEstate is LoadedEstate
