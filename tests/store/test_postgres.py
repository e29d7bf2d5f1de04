"""The PostgreSQL store: the conformance suite on a real server, plus what only this backend does."""

from __future__ import annotations

import datetime as dt

import pytest

from syncfabric.errors import ConfigError
from syncfabric.store import IncomingRecord, open_store
from syncfabric.store.postgres import PostgresStore, driver_url
from tests.servers.postgres import with_search_path
from tests.store.conformance import StoreConformance


@pytest.mark.postgres
class TestPostgresStore(StoreConformance):
    store_class = PostgresStore

    @pytest.fixture
    def store_url(self, postgres_schema_url: str) -> str:
        return postgres_schema_url

    def test_timestamps_are_utc_whatever_the_session_time_zone(self, store_url: str) -> None:
        url = store_url.replace("options=", "options=-ctimezone%3DAsia%2FTokyo%20", 1)
        with open_store(url) as store:
            assert isinstance(store, PostgresStore)
            with store._engine.connect() as conn:
                assert conn.exec_driver_sql("SHOW timezone").scalar_one() == "Asia/Tokyo"
            with store.transaction() as tx:
                tx.apply("item", [IncomingRecord("A", b"{}")])
            row = store.get("item", "A")
            assert row is not None and row.updated_at.tzinfo is dt.UTC
            assert abs(dt.datetime.now(dt.UTC) - row.updated_at) < dt.timedelta(minutes=5)

    def test_postgres_scheme_is_accepted(self, store_url: str) -> None:
        with open_store("postgres://" + store_url.split("://", 1)[1]) as store:
            assert isinstance(store, PostgresStore)
            assert store.head() == 0


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db:5432/sf", "postgresql+psycopg://u:p@db:5432/sf"),
        ("postgres://u@db/sf?sslmode=require", "postgresql+psycopg://u@db/sf?sslmode=require"),
        ("postgresql+psycopg://u@db/sf", "postgresql+psycopg://u@db/sf"),
    ],
)
def test_urls_are_rewritten_to_psycopg(given: str, expected: str) -> None:
    assert driver_url(given) == expected


def test_other_drivers_are_refused() -> None:
    with pytest.raises(ConfigError, match="psycopg2"):
        driver_url("postgresql+psycopg2://u@db/sf")


def test_search_path_is_added_to_the_url() -> None:
    assert with_search_path("postgresql://u@h/db", "t_1") == "postgresql://u@h/db?options=-csearch_path%3Dt_1"


@pytest.mark.postgres
def test_a_commit_that_does_not_wait_for_the_disk_turns_synchronous_commit_off_for_itself_only(
        postgres_schema_url: str) -> None:
    """(The test server runs with ``synchronous_commit=off`` for speed: the session sets it on to see the change.)"""
    url = postgres_schema_url.replace("options=", "options=-csynchronous_commit%3Don%20", 1)
    assert url != postgres_schema_url
    with open_store(url) as store:
        with store.transaction(durable=False) as tx:
            tx.set_checkpoint("out", "7")
            relaxed = tx._conn.exec_driver_sql("SHOW synchronous_commit").scalar()  # type: ignore[union-attr]
        with store.transaction() as tx:
            durable = tx._conn.exec_driver_sql("SHOW synchronous_commit").scalar()  # type: ignore[union-attr]
        assert (relaxed, durable) == ("off", "on") and store.checkpoint("out") == "7"
