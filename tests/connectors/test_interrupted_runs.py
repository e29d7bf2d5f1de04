"""A full refresh that dies part-way through, from a database and from a paged API, resumes from its committed
pages and ends in exactly the state of a run that never died: every change once, deletions included."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Column, DateTime, MetaData, String, Table, create_engine, delete, insert, update

from syncfabric.config import load_estate
from syncfabric.connectors.base import Page
from syncfabric.connectors.rest.connector import RestConnector
from syncfabric.connectors.sql.connector import SqlConnector
from syncfabric.flows.runtime import Runtime
from syncfabric.sandbox.rest_api import create_app
from syncfabric.sandbox.server import serve
from syncfabric.store import Store

ESTATE = """\
version: 1
store: sqlite:///{store}
systems:
  erp: {{kind: sql, connection: {{url: "sqlite:///{erp}", page_size: 7}}}}
  portal:
    kind: rest
    connection:
      base_url: "{portal}"
      page_size: 7
      endpoints: {{parts: {{path: /api/v1/cursor/parts, records: items, paging: cursor, limit_param: page_size}}}}
mappings:
  erp-items: {{system: erp, entity: item, fields: {{item_id: matnr, description: text, base_unit: {{const: EA}}}}}}
  portal-items: {{system: portal, entity: item, fields: {{item_id: id, description: name, base_unit: {{const: EA}}}}}}
flows:
  erp-full: {{direction: inbound, system: erp, entities: [item], mode: full, source: erp_items, mapping: erp-items}}
  portal-full: {{direction: inbound, system: portal, entities: [item], mode: full, source: parts,
                mapping: portal-items}}
"""


class Killed(Exception):
    """Stands for the process dying between two pages."""


def dying_after(pages: int, read: Callable[..., Iterator[Page]]) -> Callable[..., Iterator[Page]]:
    def read_full(self: Any, entity: str, cursor: str | None = None) -> Iterator[Page]:
        for number, page in enumerate(read(self, entity, cursor), start=1):
            if number > pages:
                raise Killed
            yield page

    return read_full


def history(store: Store) -> tuple[list[Any], list[Any]]:
    state = [(row.key, row.version, row.content_hash, row.deleted)
             for row in store.current("item", include_deleted=True)]
    log = [(change.key, change.version, change.op, change.content_hash) for change in store.changes(0, limit=10_000)]
    return state, log


@pytest.fixture
def portal() -> Iterator[str]:
    with serve(create_app()) as url:
        yield url


def runtime(tmp_path: Path, name: str, portal: str) -> Runtime:
    estate = tmp_path / f"{name}.yaml"
    estate.write_text(ESTATE.format(store=tmp_path / f"{name}.db", erp=tmp_path / "erp.db", portal=portal))
    return Runtime(load_estate(estate, environ={}))


@pytest.mark.parametrize("flow", ["erp-full", "portal-full"])
def test_an_interrupted_full_refresh_ends_as_an_uninterrupted_one(
        tmp_path: Path, portal: str, flow: str, monkeypatch: pytest.MonkeyPatch) -> None:
    erp = create_engine(f"sqlite:///{tmp_path}/erp.db")
    items = Table("erp_items", MetaData(), Column("matnr", String, primary_key=True), Column("text", String),
                  Column("changed_at", DateTime))
    items.metadata.create_all(erp)
    rows = [{"matnr": f"M{n:03d}", "text": f"item {n}"} for n in range(40)]
    with erp.begin() as conn:
        conn.execute(insert(items), rows)
    control = httpx.Client(base_url=f"{portal}/api/_sandbox")
    control.put("/records/parts", json=[{"id": row["matnr"], "name": row["text"]} for row in rows]).raise_for_status()

    def edit_sources() -> None:
        with erp.begin() as conn:
            conn.execute(delete(items).where(items.c.matnr.in_(["M003", "M030"])))
            conn.execute(update(items).where(items.c.matnr.in_(["M001", "M020", "M039"])).values(text="changed"))
        for gone in ("M003", "M030"):
            control.delete(f"/records/parts/{gone}").raise_for_status()
        control.put("/records/parts", json=[{"id": key, "name": "changed"} for key in ("M001", "M020", "M039")])

    with runtime(tmp_path, "clean", portal) as clean:
        clean.run_flow(flow)
        edit_sources()
        clean.run_flow(flow)
        expected = history(clean.store)
    # The same two runs against the same source data, the second one dying part-way three times.
    edit_back = [{"id": row["matnr"], "name": row["text"]} for row in rows]
    with erp.begin() as conn:
        conn.execute(delete(items))
        conn.execute(insert(items), rows)
    control.put("/records/parts", json=edit_back).raise_for_status()
    with runtime(tmp_path, "crashing", portal) as crashing:
        crashing.run_flow(flow)
        edit_sources()
        for pages in (2, 4, 1):
            with monkeypatch.context() as patched:
                for cls in (SqlConnector, RestConnector):
                    patched.setattr(cls, "read_full", dying_after(pages, cls.read_full))
                with pytest.raises(Killed):
                    crashing.run_flow(flow)
        result = crashing.run_flow(flow)
        assert result.deleted == 2
        assert history(crashing.store) == expected
    assert [len(part) for part in expected] == [40, 45], "40 inserts, 3 updates and 2 deletions, each once"
    erp.dispose()
