"""The SQL connector against real databases: a SQLite file and the session's PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, Numeric, String, Table, create_engine, insert, update
from sqlalchemy.engine import Engine

from syncfabric.config import load_estate
from syncfabric.config.loader import validate_estate_file as validate_estate
from syncfabric.connectors.base import Page
from syncfabric.connectors.sql.configuration import SqlConfig, SqlSource
from syncfabric.connectors.sql.connector import SqlConnector
from syncfabric.errors import PermanentError, TransientError
from syncfabric.flows.runtime import Runtime

T0 = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def erp(db_url: str) -> Iterator[tuple[Engine, Table]]:
    """An ERP table of stock per (plant, item) with a modification time stamp."""
    engine = create_engine(db_url)
    stock = Table(
        "stock", MetaData(),
        Column("plant", String(8), primary_key=True), Column("item", String(16), primary_key=True),
        Column("qty", Numeric(12, 3), nullable=False), Column("changed_at", DateTime(timezone=True)),
    )
    stock.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(stock), [
            {"plant": plant, "item": f"I{n:03d}", "qty": n, "changed_at": T0 + dt.timedelta(minutes=n)}
            for plant in ("P1", "P2") for n in range(1, 13)
        ])
    yield engine, stock
    engine.dispose()


def instant(text: str) -> dt.datetime:
    """A stored date-time as UTC (SQLite keeps no offset)."""
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def connector(url: str, page_size: int = 5, **sources: SqlSource) -> SqlConnector:
    return SqlConnector("erp", SqlConfig(url=url, page_size=page_size, sources=sources))


def keys(pages: list[Page]) -> list[str]:
    return [record.location for page in pages for record in page.records]


def test_full_read_pages_in_key_order_and_marks_only_the_last_page_complete(
        erp: tuple[Engine, Table], db_url: str) -> None:
    with connector(db_url) as source:
        pages = list(source.read_full("stock"))

    assert [len(page.records) for page in pages] == [5, 5, 5, 5, 4]
    assert [page.complete for page in pages] == [False, False, False, False, True]
    assert keys(pages)[:3] == ["stock:P1|I001", "stock:P1|I002", "stock:P1|I003"]
    assert len(set(keys(pages))) == 24
    first = pages[0].records[0].data
    assert first["plant"] == "P1" and first["item"] == "I001" and float(first["qty"]) == 1.0
    assert instant(first["changed_at"]) == T0 + dt.timedelta(minutes=1)


def test_full_read_resumes_after_the_cursor_of_a_committed_page(erp: tuple[Engine, Table], db_url: str) -> None:
    engine, stock = erp
    with connector(db_url) as source:
        pages = list(source.read_full("stock"))
        # The ERP inserts a row that sorts before the cursor and one after it while the read is interrupted.
        with engine.begin() as conn:
            conn.execute(insert(stock), [{"plant": "P1", "item": "I000", "qty": 0}, {"plant": "P3", "item": "I001",
                                                                                     "qty": 1}])
        resumed = list(source.read_full("stock", pages[1].cursor))
        again = list(source.read_full("stock", resumed[-1].cursor))

    assert keys(resumed) == [*keys(pages)[10:], "stock:P3|I001"], "resumes exactly after the 10th row"
    assert resumed[-1].complete
    assert len(keys(again)) == 26 and keys(again)[0] == "stock:P1|I000", "after a complete read, start over"


def test_a_table_of_exactly_full_pages_ends_with_an_empty_complete_page(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    engine = create_engine(url)
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True))
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(table), [{"id": n} for n in range(10)])
    with connector(url) as source:
        pages = list(source.read_full("t"))
    assert [(len(page.records), page.complete) for page in pages] == [(5, False), (5, False), (0, True)]


def test_a_query_source_is_paged_by_its_declared_key(erp: tuple[Engine, Table], db_url: str) -> None:
    query = SqlSource(query="SELECT item, SUM(qty) AS total FROM stock GROUP BY item", key=["item"])
    with connector(db_url, totals=query) as source:
        pages = list(source.read_full("totals"))
    totals = {record.data["item"]: float(record.data["total"]) for page in pages for record in page.records}
    assert len(pages) == 3 and pages[-1].complete
    assert totals["I012"] == 24.0 and len(totals) == 12


def test_net_change_reads_from_the_highest_watermark_in_the_data_less_the_overlap(
        erp: tuple[Engine, Table], db_url: str) -> None:
    engine, stock = erp
    source_spec = SqlSource(table="stock", watermark="changed_at", overlap=120)
    with connector(db_url, stock=source_spec) as source:
        first = list(source.read_changes("stock", None))
        assert len(keys(first)) == 24
        cursor = msgspec.json.decode(first[-1].cursor or "")
        assert instant(cursor["high"][1]) == T0 + dt.timedelta(minutes=12)

        with engine.begin() as conn:
            conn.execute(update(stock).where(stock.c.item == "I003").values(qty=99, changed_at=T0.replace(hour=9)))
            # a late commit stamped 90 s before the high watermark: inside the overlap window
            conn.execute(insert(stock).values(plant="P9", item="LATE", qty=1,
                                              changed_at=T0 + dt.timedelta(minutes=10, seconds=30)))
            conn.execute(insert(stock).values(plant="P9", item="OLD", qty=1, changed_at=T0))  # outside it
            conn.execute(insert(stock).values(plant="P9", item="NULL", qty=1, changed_at=None))
        second = list(source.read_changes("stock", first[-1].cursor))

    got = keys(second)
    assert {"stock:P1|I003", "stock:P2|I003", "stock:P9|LATE"} <= set(got)
    assert "stock:P9|OLD" not in got and "stock:P9|NULL" not in got
    assert set(got) - {"stock:P1|I003", "stock:P2|I003", "stock:P9|LATE"} <= {
        "stock:P1|I010", "stock:P2|I010", "stock:P1|I011", "stock:P2|I011", "stock:P1|I012", "stock:P2|I012"}, \
        "only the overlap (08:10 on) is read again"
    assert not any(page.complete for page in second)
    high = msgspec.json.decode(second[-1].cursor or "")["high"][1]
    assert instant(high) == T0.replace(hour=9)


def test_net_change_on_a_query_source_compares_watermarks_as_the_database_stores_them(
        erp: tuple[Engine, Table], db_url: str) -> None:
    engine, stock = erp
    query = SqlSource(query="SELECT plant, item, qty, changed_at FROM stock WHERE plant = 'P1'",
                      key=["plant", "item"], watermark="changed_at", overlap=90)
    with connector(db_url, p1=query) as source:
        first = list(source.read_changes("p1", None))
        assert len(keys(first)) == 12
        with engine.begin() as conn:
            conn.execute(update(stock).where(stock.c.item == "I002").values(changed_at=T0.replace(hour=10)))
        second = list(source.read_changes("p1", first[-1].cursor))
    # SQLite gives a query's date-times back as text: the overlap must be subtracted in the same text form
    assert keys(second) == ["p1:P1|I011", "p1:P1|I012", "p1:P1|I002"]


def test_net_change_resumes_inside_a_read_from_its_cursor(erp: tuple[Engine, Table], db_url: str) -> None:
    with connector(db_url, stock=SqlSource(table="stock", watermark="changed_at", overlap=60)) as source:
        whole = list(source.read_changes("stock", None))
        resumed = list(source.read_changes("stock", whole[2].cursor))
    assert keys(resumed) == keys(whole)[15:]
    assert resumed[-1].cursor == whole[-1].cursor


def test_driver_errors_are_translated_once(erp: tuple[Engine, Table], db_url: str) -> None:
    broken = SqlSource(query="SELECT item, nope FROM stock", key=["item"])
    with connector(db_url, broken=broken) as source:
        with pytest.raises(PermanentError, match="no table") as missing:
            list(source.read_full("no_such_table"))
        assert missing.value.system == "erp" and missing.value.entity == "no_such_table"
        with pytest.raises(PermanentError, match="database refused the query"):
            list(source.read_full("broken"))
        with pytest.raises(PermanentError, match="no watermark column"):
            list(source.read_changes("stock", None))


@pytest.mark.postgres
def test_an_unreachable_server_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once the socket is closed
    with connector(f"postgresql://erp@127.0.0.1:{port}/erp") as source, pytest.raises(TransientError,
                                                                                         match="unavailable"):
        source.test_connection()


def test_a_locked_sqlite_database_is_transient(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/locked.db"
    engine = create_engine(url)
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True))
    table.metadata.create_all(engine)
    with engine.connect() as holder:
        holder.exec_driver_sql("BEGIN EXCLUSIVE")
        source = SqlConnector("erp", SqlConfig(url=url, connect_timeout_seconds=0.05))
        with source, pytest.raises(TransientError, match="locked"):
            list(source.read_full("t"))
        holder.rollback()


def test_the_password_comes_from_credentials_and_never_from_the_url(tmp_path: Path) -> None:
    source = SqlConnector("erp", SqlConfig(url="postgresql://erp@db.example.test/erp"), {"password": "s3cret"})
    assert source.url().password == "s3cret" and source.url().drivername == "postgresql+psycopg"
    assert "s3cret" not in repr(source.url())
    relative = SqlConnector("erp", SqlConfig(url="sqlite:///data/erp.db"), base_dir=tmp_path)
    assert relative.url().database == str(tmp_path / "data" / "erp.db")


ESTATE = """\
version: 1
store: sqlite:///sf.db
systems:
  erp:
    kind: sql
    connection:
      url: sqlite:///erp.db
      page_size: 4
      sources:
        items: {table: erp_items, watermark: changed_at, overlap: 60}
    credentials:
      password: {env: ERP_DB_PASSWORD}
mappings:
  erp-items:
    system: erp
    entity: item
    fields: {item_id: matnr, description: text, base_unit: {const: EA}}
flows:
  items-full: {direction: inbound, system: erp, entities: [item], mode: full, source: items, mapping: erp-items}
  items-changes: {direction: inbound, system: erp, entities: [item], mode: changes, source: items,
                  mapping: erp-items}
"""


def test_validate_reports_bad_connection_settings_with_their_path(tmp_path: Path) -> None:
    bad = ESTATE.replace("url: sqlite:///erp.db", "url: postgresql://erp:hunter2@db/erp")
    (tmp_path / "estate.yaml").write_text(bad)
    problems = validate_estate(tmp_path / "estate.yaml", environ={})
    text = "\n".join(problems)
    assert "systems.erp.connection" in text and "url must not hold a password" in text
    assert "hunter2" not in text
    (tmp_path / "estate.yaml").write_text(ESTATE.replace("{table: erp_items, watermark: changed_at, overlap: 60}",
                                                         "{query: SELECT 1}"))
    problems = validate_estate(tmp_path / "estate.yaml", environ={})
    assert any("a query source needs key" in p and "$.systems.erp.connection.sources" in p for p in problems), problems


def test_inbound_flows_from_an_estate_file(tmp_path: Path, db_url: str) -> None:
    engine = create_engine(db_url)
    items = Table("erp_items", MetaData(), Column("matnr", String, primary_key=True), Column("text", String),
                  Column("changed_at", DateTime))
    items.metadata.create_all(engine)
    stamp = dt.datetime(2026, 5, 1, 8, 0)
    with engine.begin() as conn:
        conn.execute(insert(items), [{"matnr": f"M{n:02d}", "text": f"item {n}", "changed_at": stamp}
                                     for n in range(10)])
    (tmp_path / "estate.yaml").write_text(ESTATE.replace("url: sqlite:///erp.db", f'url: "{db_url}"'))
    loaded = load_estate(tmp_path / "estate.yaml", environ={"ERP_DB_PASSWORD": "any (the test server trusts)"})
    with Runtime(loaded) as runtime:
        full = runtime.run_flow("items-full")
        assert (full.inserted, full.unchanged) == (10, 0)
        assert runtime.run_flow("items-changes").unchanged == 10, "the first net-change read finds nothing new"
        with engine.begin() as conn:
            conn.execute(update(items).where(items.c.matnr == "M03").values(text="renamed",
                                                                             changed_at=stamp.replace(hour=9)))
            conn.execute(insert(items).values(matnr="M99", text="new", changed_at=stamp.replace(hour=9)))
            conn.execute(items.delete().where(items.c.matnr == "M05"))
        changes = runtime.run_flow("items-changes")
        assert (changes.inserted, changes.updated, changes.deleted) == (1, 1, 0)
        again = runtime.run_flow("items-changes")
        assert (again.inserted, again.updated) == (0, 0), "the overlap re-reads, and the hash absorbs it"
        full = runtime.run_flow("items-full")
        assert full.deleted == 1 and full.inserted == 0
        row = runtime.store.get("item", "M03")
        assert row is not None and msgspec.json.decode(row.payload or b"{}")["description"] == "renamed"
    engine.dispose()


def test_validate_reports_a_net_change_flow_without_a_watermark_at_its_source(tmp_path: Path) -> None:
    estate = ESTATE.replace("mode: changes, source: items", "mode: changes, source: erp_items")
    (tmp_path / "estate.yaml").write_text(estate)
    problems = validate_estate(tmp_path / "estate.yaml", environ={})
    assert len(problems) == 1, problems
    assert "table 'erp_items' (not declared under sources) has no watermark column" in problems[0]
    assert problems[0].endswith("@ $.flows.items-changes.source")
    (tmp_path / "estate.yaml").write_text(ESTATE.replace("source: items, mapping", "source: SELECT * FROM x, mapping"))
    [problem] = validate_estate(tmp_path / "estate.yaml", environ={})
    assert "looks like a query" in problem and "$.flows.items-full.source" in problem


def twelve_rows(url: str) -> Engine:
    """Table ``t`` with ids 0 to 11 at ``url``; the engine that made it."""
    engine = create_engine(url)
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True))
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(table), [{"id": n} for n in range(12)])
    return engine


@pytest.mark.postgres
def test_a_paused_read_holds_no_transaction_open_on_the_source(postgres_schema_url: str) -> None:
    url = postgres_schema_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = twelve_rows(url)
    with connector(url + "&application_name=sf-paused-read") as source:
        pages = source.read_full("t")
        first = next(pages)  # the flow is storing this page: the source must not wait on an open transaction
        with engine.connect() as conn:
            state = conn.exec_driver_sql(
                "SELECT state FROM pg_stat_activity WHERE application_name = 'sf-paused-read'").scalar_one()
        rest = list(pages)
    assert state == "idle"
    assert len(first.records) == 5 and len(keys(rest)) == 7
    engine.dispose()


def test_a_database_without_its_driver_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="database driver not installed: NoSuchModuleError"):
        SqlConnector("erp", SqlConfig(url="nosuchdb://erp@db.example.test/erp")).open()


@pytest.mark.postgres
def test_a_connection_lost_between_pages_is_opened_again_and_the_read_goes_on(postgres_schema_url: str) -> None:
    url = postgres_schema_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = twelve_rows(url)
    with connector(url + "&application_name=sf-lost-connection") as source:
        pages = source.read_full("t")
        first = next(pages)
        with engine.connect() as conn:  # the server ends the reader's session, as a failover or restart would
            killed = conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                          "WHERE application_name = 'sf-lost-connection'").scalars().all()
        rest = list(pages)
    assert killed == [True]
    assert keys([first, *rest]) == [f"t:{n}" for n in range(12)]
    engine.dispose()
