"""Secrets are given by reference and never printed, in problems or in reprs."""

from __future__ import annotations

import pytest

from syncfabric.config import load_estate, validate_estate_file
from syncfabric.errors import ConfigError
from tests.config.conftest import VALID, line_of

SECRET = "s3cr3t-7f6e5d"


def test_inline_secret_in_connection_is_rejected_without_showing_it(write_estate) -> None:
    text = VALID.replace("      port: 8443", f"      port: 8443\n      password: {SECRET}\n"
                                             f"      auth: {{clientSecret: {SECRET}, token_url: https://id.test}}")
    path = write_estate(text)

    with pytest.raises(ConfigError) as caught:
        load_estate(path, environ={})

    line = line_of(text, "password:")
    assert caught.value.problems == [
        f"{path}:{line}:7: secrets must be given as {{env: VARIABLE}}, not inline: remove it from connection and "
        f"add under credentials password: {{env: ERP_PASSWORD}} @ $.systems.erp.connection.password",
        f"{path}:{line + 1}:7: unknown field 'auth' (expected one of: port, url, verify_tls) "
        f"@ $.systems.erp.connection.auth",
        f"{path}:{line + 1}:14: secrets must be given as {{env: VARIABLE}}, not inline: remove it from connection "
        f"and add under credentials clientSecret: {{env: ERP_CLIENTSECRET}} "
        f"@ $.systems.erp.connection.auth.clientSecret",
    ]
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("key", ["api_key", "apikey", "access_token", "db_password", "secret"])
def test_secret_like_names(write_estate, key: str) -> None:
    path = write_estate(VALID.replace("      port: 8443", f"      port: 8443\n      {key}: {SECRET}"))

    problems = validate_estate_file(path, environ={})

    assert any("not inline" in problem and problem.endswith(f"connection.{key}") for problem in problems)
    assert not any(SECRET in problem for problem in problems)


def test_secret_given_by_override_is_rejected_by_variable(write_estate) -> None:
    path = write_estate(VALID)
    environ = {"SYNCFABRIC__SYSTEMS__ERP__CONNECTION__API_KEY": SECRET}

    problems = validate_estate_file(path, environ=environ)

    assert problems[0].startswith("SYNCFABRIC__SYSTEMS__ERP__CONNECTION__API_KEY: secrets must be given as "
                                  "{env: VARIABLE}, not inline")
    assert not any(SECRET in problem for problem in problems)


def test_store_password_belongs_in_the_environment(write_estate) -> None:
    text = VALID.replace("sqlite:///data/sf.db", f"postgresql://sf:{SECRET}@db.test/sf")
    path = write_estate(text)

    problems = validate_estate_file(path, environ={})

    assert problems == [f"{path}:3:1: secrets must be given as {{env: VARIABLE}}, not inline: give the store URL "
                        f"with its password in the environment variable SYNCFABRIC__STORE @ $.store"]
    environ = {"SYNCFABRIC__STORE": f"postgresql://sf:{SECRET}@db.test/sf"}
    assert validate_estate_file(write_estate(VALID), environ=environ) == []


def test_secret_in_a_misplaced_value_is_not_echoed(write_estate) -> None:
    text = VALID.replace("    connection: {url: https://plan.example.test}", f"    connection: {SECRET}")
    problems = validate_estate_file(write_estate(text), environ={})

    assert problems and not any(SECRET in problem for problem in problems)
    assert problems[0].endswith("expected mapping, got a string @ $.systems.planner.connection")


def test_resolved_secrets_stay_out_of_repr_and_errors(write_estate) -> None:
    loaded = load_estate(write_estate(VALID), environ={"ERP_TOKEN": SECRET})

    assert loaded.secrets("erp")["token"] == SECRET
    assert SECRET not in repr(loaded)
    assert SECRET not in str(loaded)
    with pytest.raises(ConfigError) as caught:
        loaded.connection("nowhere")
    assert SECRET not in str(caught.value)
