"""Net change by a watermark taken from the data: the source is a real SQLite table with a ``last_modified_at``
column, read by an in-test connector that selects ``WHERE last_modified_at >= since ORDER BY last_modified_at``
in pages. A change committed late (its timestamp older than the newest already read) is caught by the overlap
window; the rows read twice because of the overlap write nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from syncfabric.config.schema import Mapping, Watermark
from syncfabric.connectors.base import Capability, Connector, Page, RawRecord
from syncfabric.connectors.watermark import comparable, highest, since
from syncfabric.flows.inbound import InboundCheckpoint, run_inbound
from syncfabric.mapping import FieldMap
from syncfabric.store import Store

ITEMS = Mapping(system="erp", entity="item", fields={"item_id": "ITEM", "description": "DESC", "base_unit": "UOM"})


class TableSource(Connector):
    """Reads table ``items`` of a SQLite database by its ``last_modified_at`` column, ``page_size`` rows a page."""

    kind = "table"
    capabilities = Capability.READ_CHANGES
    page_size = 3

    def __init__(self, path: Path) -> None:
        super().__init__("erp", None)
        self.path = path
        self.asked: list[str | None] = []

    def read_changes(self, entity: str, since: str | None) -> Iterator[Page]:
        self.asked.append(since)
        with sqlite3.connect(self.path) as db:
            rows = db.execute(
                "SELECT item, descr, last_modified_at FROM items WHERE last_modified_at >= ? "
                "ORDER BY last_modified_at, item", (since or "",)).fetchall()
        for start in range(0, len(rows), self.page_size):
            chunk = rows[start:start + self.page_size]
            yield Page([RawRecord({"ITEM": item, "DESC": descr, "UOM": "EA", "last_modified_at": stamp},
                                  f"items:{item}") for item, descr, stamp in chunk], cursor=chunk[-1][2])


def table(path: Path, rows: list[tuple[str, str, str]]) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS items (item TEXT PRIMARY KEY, descr TEXT, last_modified_at TEXT)")
        db.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?)", rows)


def run(store: Store, source: TableSource, overlap: float):
    return run_inbound(store, "items-in", source, FieldMap("erp-items", ITEMS), mode="changes", source="items",
                       watermark=Watermark(field="last_modified_at", overlap_seconds=overlap))


@pytest.mark.parametrize("overlap", [600.0, 0.0])
def test_overlap_window_catches_late_commits_and_absorbs_duplicates(tmp_path: Path, store: Store,
                                                                     overlap: float) -> None:
    db = tmp_path / "erp.db"
    table(db, [(f"I{n}", f"item {n}", f"2026-11-02T08:0{n}:00+00:00") for n in range(1, 8)])
    source = TableSource(db)

    first = run(store, source, overlap)
    assert (first.inserted, first.unchanged) == (7, 0)
    assert source.asked == [None]
    checkpoint = msgspec.json.decode(store.checkpoint("items-in") or "", type=InboundCheckpoint)
    assert checkpoint.watermark == "2026-11-02T08:07:00+00:00"

    # One change after the watermark, and one committed late: stamped 08:05, before the newest row read.
    table(db, [("I8", "item 8", "2026-11-02T08:09:00+00:00"), ("I9", "late item", "2026-11-02T08:05:30+00:00")])
    second = run(store, source, overlap)

    assert source.asked[1] == ("2026-11-02T07:57:00+00:00" if overlap else "2026-11-02T08:07:00+00:00")
    if overlap:
        assert second.inserted == 2  # I8 and the late I9
        assert second.unchanged == 7  # I1..I7 again, from the overlap: absorbed by their content hash
        assert store.get("item", "I9") is not None
    else:
        assert second.inserted == 1  # without an overlap the late commit is lost to this flow
        assert store.get("item", "I9") is None
    assert store.count("item") == (9 if overlap else 8)
    assert len(store.changes(0, limit=100)) == store.count("item")  # nothing written twice

    checkpoint = msgspec.json.decode(store.checkpoint("items-in") or "", type=InboundCheckpoint)
    assert checkpoint.watermark == "2026-11-02T08:09:00+00:00"

    third = run(store, source, overlap)
    assert third.changed == 0


def test_watermark_values_compare_by_kind() -> None:
    assert comparable("2026-11-02T08:00:00Z") == comparable("2026-11-02T09:00:00+01:00")
    records = [RawRecord({"m": value}) for value in ("2026-11-02T08:00:00Z", "2026-11-02T10:00:00Z", None, "")]
    assert highest(records, "m", "2026-11-02T09:00:00+00:00") == "2026-11-02T10:00:00Z"
    assert highest([RawRecord({"m": 9}), RawRecord({"m": 10})], "m", None) == "10"
    assert since("100", 5) == "95"
    assert since("2026-11-02T08:00:00+00:00", 90) == "2026-11-02T07:58:30+00:00"
    assert since("abc", 90) == "abc"
    assert since(None, 90) is None
    assert since("2026-11-02 08:00:00Z", 90) == "2026-11-02 07:58:30Z"  # in the watermark's own form


def test_connectors_and_flows_compare_watermarks_the_same_way() -> None:
    import datetime as dt
    from decimal import Decimal

    from syncfabric.connectors.watermark import later

    assert later("9", "10") == "10" and later(9, Decimal("9.5")) == Decimal("9.5")
    assert later(dt.datetime(2026, 11, 2, 8, 30), "2026-11-02T09:00:00+01:00") == dt.datetime(2026, 11, 2, 8, 30)
    assert later("2026-11-02T08:00:00Z", "2026-11-02T07:59:00-01:00") == "2026-11-02T07:59:00-01:00"
    assert later(None, "") is None and later("", "abc") == "abc" and later("abd", "abc") == "abd"
    for a, b in (("9", "10"), ("2026-11-02T08:00:00Z", "2026-11-02T09:30:00+01:00"), ("a", "b")):
        assert later(a, b) == highest([RawRecord({"m": b})], "m", a)


class Crash(Exception):
    """The process died between two pages."""


def test_a_run_that_dies_mid_read_resumes_from_the_committed_watermark(tmp_path: Path, store: Store) -> None:
    db = tmp_path / "erp.db"
    table(db, [(f"I{n:02d}", f"item {n}", f"2026-11-02T08:{n:02d}:00+00:00") for n in range(1, 12)])
    source = TableSource(db)
    served = source.read_changes

    def dying(entity: str, since: str | None):
        for number, page in enumerate(served(entity, since)):
            if number == 2:
                raise Crash
            yield page

    source.read_changes = dying  # type: ignore[method-assign]
    with pytest.raises(Crash):
        run(store, source, 120.0)
    assert store.count("item") == 6  # two pages of three committed
    checkpoint = msgspec.json.decode(store.checkpoint("items-in") or "", type=InboundCheckpoint)
    assert checkpoint.watermark == "2026-11-02T08:06:00+00:00"

    source.read_changes = served  # type: ignore[method-assign]
    again = run(store, source, 120.0)
    assert source.asked[-1] == "2026-11-02T08:04:00+00:00"
    assert (again.inserted, again.unchanged) == (5, 3)  # I07..I11 new; I04..I06 from the overlap write nothing
    assert store.count("item") == 11 and len(store.changes(0, limit=100)) == 11
