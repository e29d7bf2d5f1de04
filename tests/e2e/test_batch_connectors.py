"""The batch-connectors example estate, run as a new user would: an ERP database, a supplier portal's paged API
and a warehouse drop folder feed the planning platform, over real SQLite files, real HTTP and real files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
from sqlalchemy import Column, DateTime, MetaData, String, Table, create_engine, insert, update

from syncfabric.config import load_estate
from syncfabric.config.loader import validate_estate_file
from syncfabric.flows.runtime import Runtime
from syncfabric.sandbox import planning_platform, rest_api
from syncfabric.sandbox.server import serve

EXAMPLE = Path(__file__).parents[2] / "examples" / "batch-connectors" / "estate.yaml"
ENV = {"ERP_DB_PASSWORD": "unused-by-sqlite", "PORTAL_TOKEN": "portal", "PLANNING_TOKEN": "plan"}
STAMP = dt.datetime(2026, 5, 1, 8, 0)


def test_the_example_estate_is_valid() -> None:
    assert validate_estate_file(EXAMPLE, environ=ENV) == []


def test_three_sources_feed_the_planning_platform(tmp_path: Path) -> None:
    (tmp_path / "erp").mkdir()
    (tmp_path / "drop" / "wms").mkdir(parents=True)
    erp = create_engine(f"sqlite:///{tmp_path}/erp/erp.db")
    items = Table("items", MetaData(), Column("item_no", String, primary_key=True), Column("text", String),
                  Column("uom", String), Column("changed_at", DateTime))
    plants = Table("plants", items.metadata, Column("plant", String, primary_key=True), Column("name", String),
                   Column("tz", String))
    items.metadata.create_all(erp)
    with erp.begin() as conn:
        conn.execute(insert(plants).values(plant="DE01", name="Munich", tz="Europe/Berlin"))
        conn.execute(insert(items), [{"item_no": f"M{n:03d}", "text": f"part {n}", "uom": "EA", "changed_at": STAMP}
                                     for n in range(1, 51)])
    (tmp_path / "drop" / "wms" / "stock_1.jsonl").write_text("".join(
        f'{{"item": "M{n:03d}", "site": "DE01", "qty": {{"value": {n}, "unit": "EA"}}, '
        f'"counted_at": "2026-05-01T06:00:00Z"}}\n' for n in range(1, 11)) + '{"item": "M011", "site": \n')
    (tmp_path / "drop" / "wms" / "stock_1.jsonl.done").write_text("")

    with serve(rest_api.create_app(token="portal")) as portal_url, \
            serve(planning_platform.create_app(token="plan")) as planning_url:
        httpx.put(f"{portal_url}/api/_sandbox/records/terms", json=[
            {"id": f"T{n}", "item": f"M{n:03d}", "supplier": "ACME", "lead_days": 5 + n, "price": "1.25",
             "updated_at": "2026-05-01T07:00:00Z"} for n in range(1, 21)]).raise_for_status()
        estate = (EXAMPLE.read_text().replace("http://127.0.0.1:8300", portal_url)
                  .replace("http://127.0.0.1:8700", planning_url))
        (tmp_path / "estate.yaml").write_text(estate)
        with Runtime(load_estate(tmp_path / "estate.yaml", environ=ENV)) as runtime:
            results = {name: runtime.run_flow(name) for name in ("plants", "items-nightly", "terms", "stock",
                                                                    "to-planning")}
            assert results["items-nightly"].inserted == 50
            assert results["terms"].inserted == 20
            assert (results["stock"].inserted, results["stock"].quarantined) == (10, 1)
            assert results["to-planning"].records_out == 81

            with erp.begin() as conn:
                conn.execute(update(items).where(items.c.item_no == "M007").values(
                    text="renamed", changed_at=STAMP.replace(hour=9)))
            httpx.put(f"{portal_url}/api/_sandbox/records/terms", json=[
                {"id": "T3", "item": "M003", "supplier": "ACME", "lead_days": 30, "price": "1.25",
                 "updated_at": "2026-05-01T09:00:00Z"}]).raise_for_status()
            changed = {name: runtime.run_flow(name) for name in ("items-changes", "terms", "stock", "to-planning")}
            assert changed["items-changes"].updated == 1 and changed["terms"].updated == 1
            assert changed["stock"].records_in == 0, "the stock file was archived and is never read again"
            assert changed["to-planning"].records_out == 2
            assert runtime.run_flow("to-planning").records_out == 0

        auth = {"Authorization": "Bearer plan"}
        platform = {row["name"]: row for row in httpx.get(f"{planning_url}/api/input/item/", headers=auth).json()}
        assert len(platform) == 50 and platform["M007"]["description"] == "renamed"
        terms = httpx.get(f"{planning_url}/api/input/itemsupplier/", params={"item": "M003"}, headers=auth).json()
        assert [row["leadtime"] for row in terms] == ["30 00:00:00"]
        buffers = httpx.get(f"{planning_url}/api/input/buffer/", headers=auth).json()
        assert sorted(row["onhand"] for row in buffers) == [float(n) for n in range(1, 11)]
    erp.dispose()
