"""The SQL connector writes target-shaped records into a real table (a SQLite file, the session's PostgreSQL):
upsert by key columns, per-record outcomes, deletions addressed by key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, MetaData, Numeric, String, Table, create_engine, select
from sqlalchemy.engine import Engine

from syncfabric.connectors.base import OutboundRecord
from syncfabric.connectors.sql.configuration import SqlConfig, SqlTarget
from syncfabric.connectors.sql.connector import SqlConnector
from syncfabric.errors import PermanentError


@pytest.fixture
def plant(db_url: str) -> Iterator[tuple[Engine, Table]]:
    engine = create_engine(db_url)
    stock = Table("stock", MetaData(), Column("WERKS", String(4), primary_key=True),
                  Column("MATNR", String(16), primary_key=True), Column("MENGE", Numeric(12, 3), nullable=False),
                  Column("MEINS", String(3)))
    stock.metadata.create_all(engine)
    yield engine, stock
    engine.dispose()


def rows(engine: Engine, table: Table) -> dict[tuple[str, str], tuple]:
    with engine.connect() as conn:
        return {(r.WERKS, r.MATNR): (float(r.MENGE), r.MEINS) for r in conn.execute(select(table))}


def writer(url: str, key: list[str] | None = None) -> SqlConnector:
    return SqlConnector("plant", SqlConfig(url=url, targets={"inventory_balance": SqlTarget(table="stock",
                                                                                            key=key or [])}))


def record(key: str, payload: dict | None, version: int = 1, target_key: dict | None = None) -> OutboundRecord:
    return OutboundRecord(key, version, payload, target_key=target_key)


def test_records_are_upserted_by_key_and_a_refused_one_does_not_stop_the_others(
        db_url: str, plant: tuple[Engine, Table]) -> None:
    engine, table = plant
    with writer(db_url) as target:
        first = target.write("inventory_balance", [
            record("A|P1|", {"WERKS": "1000", "MATNR": "A", "MENGE": "5", "MEINS": "EA"}),
            record("B|P1|", {"WERKS": "1000", "MATNR": "B", "MENGE": None, "MEINS": "EA"}),  # NOT NULL
            record("C|P1|", {"WERKS": "1000", "MATNR": "C", "MENGE": "2.5", "COLOUR": "red"}),
            record("D|P1|", {"WERKS": "1000", "MATNR": "D", "MENGE": "7", "MEINS": "KG"}),
        ])
        assert first.accepted == ["A|P1|", "D|P1|"]
        assert set(first.rejected) == {"B|P1|", "C|P1|"}
        assert "database refused the query" in first.rejected["B|P1|"]
        assert first.rejected["C|P1|"].startswith("table 'stock' has no column 'COLOUR'")
        assert rows(engine, table) == {("1000", "A"): (5.0, "EA"), ("1000", "D"): (7.0, "KG")}

        again = target.write("inventory_balance", [
            record("A|P1|", {"WERKS": "1000", "MATNR": "A", "MENGE": "5", "MEINS": "EA"}),  # the same again
            record("D|P1|", {"WERKS": "1000", "MATNR": "D", "MENGE": "8", "MEINS": "KG"}, version=2),
            record("A|P1|", None, version=2, target_key={"WERKS": "1000", "MATNR": "A"}),  # a deletion
        ])
        assert again.accepted == ["A|P1|", "D|P1|", "A|P1|"] and again.rejected == {}
        assert rows(engine, table) == {("1000", "D"): (8.0, "KG")}

        no_key = target.write("inventory_balance", [record("D|P1|", None, version=3, target_key={"MATNR": "D"})])
        assert no_key.rejected == {"D|P1|": "no value for key column 'WERKS' of table 'stock'"}


def test_an_entity_without_a_target_table_is_refused_as_a_whole(db_url: str, plant: tuple[Engine, Table]) -> None:
    with writer(db_url) as target, pytest.raises(PermanentError, match="no target table for entity 'item'"):
        target.write("item", [record("A", {"item_id": "A"})])
