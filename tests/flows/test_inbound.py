"""Inbound flows against a real SQLite store: crash and resume, deletions, quarantine, atomic checkpoints.

The source is an in-test connector serving pages from lists. It can stop after a given number of pages by raising
:class:`Crash`, which stands for the process dying between two pages: everything committed before stays committed,
nothing after it happens.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import msgspec
import pytest

from syncfabric.config.schema import Mapping
from syncfabric.connectors.base import Capability, Connector, Page, RawRecord, RejectedRaw
from syncfabric.connectors.files.configuration import FilesConfig
from syncfabric.connectors.files.connector import FilesConnector
from syncfabric.errors import StoreError, TransientError
from syncfabric.flows.inbound import InboundCheckpoint, run_inbound
from syncfabric.flows.result import FlowResult
from syncfabric.mapping import FieldMap
from syncfabric.store import Op, Store, Transaction, open_store

FLOW = "items-in"
ITEMS = Mapping(system="erp", entity="item", fields={
    "item_id": "ITEM", "description": "DESC", "base_unit": "UOM", "unit_cost": "COST",
})


class Crash(Exception):
    """The process died between two pages."""


class ListSource(Connector):
    """A system whose table is served in fixed pages. A full read is a snapshot: it always starts at the first page
    and its last page is complete. A change read resumes after the cursor, which counts the pages consumed."""

    kind = "list"
    capabilities = Capability.READ_FULL | Capability.READ_CHANGES

    def __init__(self, pages: list[list[dict[str, str]]], *, problems: dict[int, list[RejectedRaw]] | None = None):
        super().__init__("erp", None)
        self.pages = pages
        self.problems = problems or {}
        """Unparseable input per page index."""
        self.crash_after: int | None = None
        """Serve this many pages of the next read, then crash."""
        self.fail_acknowledge: Exception | None = None
        self.reads: list[str | None] = []
        self.served = 0
        self.acknowledged: list[str] = []

    def read_full(self, entity: str, cursor: str | None = None) -> Iterator[Page]:
        self.reads.append(cursor)
        return self._serve(0, full=True)

    def read_changes(self, entity: str, since: str | None) -> Iterator[Page]:
        self.reads.append(since)
        return self._serve(int(since) if since else 0, full=False)

    def _serve(self, start: int, *, full: bool) -> Iterator[Page]:
        crash_after, self.crash_after = self.crash_after, None
        for index in range(start, len(self.pages)):
            if crash_after is not None and index - start >= crash_after:
                raise Crash(f"killed before page {index + 1}")
            records = [RawRecord(row, f"page{index + 1}:{n}") for n, row in enumerate(self.pages[index], 1)]
            self.served += 1
            yield Page(records, cursor=str(index + 1), complete=full and index == len(self.pages) - 1,
                       problems=self.problems.get(index, ()))

    def acknowledge(self, entity: str, cursor: str) -> None:
        if self.fail_acknowledge is not None:
            raise self.fail_acknowledge
        self.acknowledged.append(cursor)


def item(number: int, cost: str = "1.50", description: str = "") -> dict[str, str]:
    return {"ITEM": f"I{number:03d}", "DESC": description or f"item {number}", "UOM": "EA", "COST": cost}


def bad(number: int) -> dict[str, str]:
    return {"ITEM": f"I{number:03d}", "DESC": "typo", "UOM": "EA", "COST": "1,5O"}


def pages_of(rows: list[dict[str, str]], size: int) -> list[list[dict[str, str]]]:
    return [rows[start:start + size] for start in range(0, len(rows), size)]


FIRST = pages_of([item(n) for n in range(1, 13)], 4)
"""Yesterday's snapshot: I001..I012."""
SECOND = [
    [item(1), item(2, cost="2.75"), bad(901), item(3)],
    [item(4), item(6), item(7, description="renamed"), item(8)],
    [bad(902), item(10), item(11), item(13)],
    [item(12), item(14), item(15), item(16)],
]
"""Today's: I002 and I007 changed, I005 and I009 gone, I013..I016 new, two rows that do not map."""


def run(store: Store, source: ListSource, mode: str = "full") -> FlowResult:
    return run_inbound(store, FLOW, source, FieldMap("legacy-items", ITEMS), mode=mode, source="items",
                       batch_id="batch-1")


def snapshot(store: Store) -> tuple[list[Any], list[Any], list[Any]]:
    """Everything an inbound flow writes: current state, the whole change log, quarantine."""
    state = [(row.key, row.version, row.content_hash, row.deleted)
             for row in store.current("item", include_deleted=True)]
    log = [(c.seq, c.entity, c.key, c.version, c.op, c.content_hash, c.lineage.source_id)
           for c in store.changes(0, limit=100_000)]
    quarantine = [(q.location, q.record_key, tuple(q.reasons), q.payload) for q in store.quarantine()]
    return state, log, quarantine


def checkpoint(store: Store) -> InboundCheckpoint:
    text = store.checkpoint(FLOW)
    assert text is not None
    return msgspec.json.decode(text, type=InboundCheckpoint)


@pytest.fixture
def reference(tmp_path) -> Iterator[tuple[list[Any], list[Any], list[Any]]]:
    """The state after both snapshots ran without interruption."""
    with open_store(f"sqlite:///{tmp_path}/reference.db") as clean:
        source = ListSource(FIRST)
        run(clean, source)
        source.pages = SECOND
        run(clean, source)
        yield snapshot(clean)


def test_an_uninterrupted_run_applies_the_snapshot(store: Store, reference) -> None:
    source = ListSource(FIRST)
    run(store, source)
    source.pages = SECOND

    result = run(store, source)

    assert (result.inserted, result.updated, result.deleted, result.quarantined) == (4, 2, 2, 2)
    assert snapshot(store) == reference
    assert store.count("item") == 14
    assert checkpoint(store) == InboundCheckpoint(cursor="4")


@pytest.mark.parametrize("crashes", [(1,), (2,), (3,), (2, 2), (1, 3), (0, 3, 3)])
def test_full_refresh_resumed_after_crashes_ends_exactly_like_an_uninterrupted_run(
    store: Store, reference, crashes: tuple[int, ...]
) -> None:
    source = ListSource(FIRST)
    run(store, source)
    source.pages = SECOND

    for n, pages in enumerate(crashes):
        source.crash_after = pages
        with pytest.raises(Crash):
            run(store, source)
        assert checkpoint(store).snapshot_pages == max(crashes[:n + 1])
    result = run(store, source)

    assert snapshot(store) == reference
    assert result.deleted == 2
    assert checkpoint(store) == InboundCheckpoint(cursor="4")
    changed_today = [entry for entry in snapshot(store)[1] if entry[0] > 12]
    assert len(changed_today) == 4 + 2 + 2  # inserts, updates, deletions: each exactly once


def test_a_snapshot_that_changed_before_the_resume_is_read_again_in_full(store: Store, tmp_path) -> None:
    """Resuming skips the pages committed before the crash; if the source now serves a shorter snapshot, those
    positions hold other records, so the snapshot is read again from its start instead."""
    third = [[item(1), item(2, cost="8"), item(20)], [item(21), item(22)]]
    source = ListSource(FIRST)
    run(store, source)
    source.pages = SECOND
    source.crash_after = 3
    with pytest.raises(Crash):
        run(store, source)
    source.pages = third

    run(store, source)

    with open_store(f"sqlite:///{tmp_path}/clean.db") as clean:
        clean_source = ListSource(FIRST)
        run(clean, clean_source)
        clean_source.pages = third
        run(clean, clean_source)
        expected = [(row.key, row.content_hash) for row in clean.current("item")]
    assert [(row.key, row.content_hash) for row in store.current("item")] == expected
    assert checkpoint(store) == InboundCheckpoint(cursor="2")


class CrashingFiles(FilesConnector):
    """The drop-folder connector, crashing after a given number of pages like :class:`ListSource`."""

    crash_after: int | None = None

    def read_full(self, entity: str, cursor: str | None = None) -> Iterator[Page]:
        return self._crashing(super().read_full(entity, cursor))

    def read_full_known(self, entity: str, cursor: str | None, known: Any) -> Iterator[Page]:
        return self._crashing(super().read_full_known(entity, cursor, known))

    def _crashing(self, pages: Iterator[Page]) -> Iterator[Page]:
        crash_after, self.crash_after = self.crash_after, None
        for served, page in enumerate(pages):
            if crash_after is not None and served >= crash_after:
                raise Crash(f"killed before page {served + 1}")
            yield page


def test_an_older_export_arriving_before_the_resume_is_read_in_full(store: Store, tmp_path) -> None:
    """Files are read oldest first, so a late file with an older time comes before the file whose snapshot was
    interrupted: its pages are not the ones committed before the crash and must not be skipped."""
    drop = tmp_path / "drop"
    drop.mkdir()

    def export(name: str, numbers: range, stamp: int) -> None:
        path = drop / name
        path.write_text("ITEM,DESC,UOM,COST\n" + "".join(f"I{n:03d},item {n},EA,1.50\n" for n in numbers))
        os.utime(path, (stamp, stamp))

    export("items_2.csv", range(1, 11), 1_800_000_000)
    files = CrashingFiles("erp", FilesConfig(folder="drop"), base_dir=tmp_path)
    files.page_size = 4
    files.crash_after = 2
    with pytest.raises(Crash):
        run_inbound(store, FLOW, files, FieldMap("legacy-items", ITEMS), mode="full", source="items_*.csv")
    export("items_1.csv", range(101, 111), 1_700_000_000)

    run_inbound(store, FLOW, files, FieldMap("legacy-items", ITEMS), mode="full", source="items_*.csv")

    upserted = {change.lineage.source_id for change in store.changes(0) if change.op is Op.UPSERT}
    assert {f"items_1.csv:{line}" for line in range(2, 12)} <= upserted, "the older export was not applied"
    assert [row.key for row in store.current("item")] == [f"I{n:03d}" for n in range(1, 11)]
    assert sorted(path.name for path in (drop / "archive").iterdir()) == ["items_1.csv", "items_2.csv"]


def test_keys_missing_from_the_snapshot_are_deleted_only_when_it_completes(store: Store) -> None:
    source = ListSource(FIRST)
    run(store, source)
    head = store.head()
    source.pages = SECOND
    source.crash_after = 3  # the last page, which completes the snapshot, is never committed

    with pytest.raises(Crash):
        run(store, source)

    assert not any(change.op is Op.DELETE for change in store.changes(0))
    for key in ("I005", "I009"):
        row = store.get("item", key)
        assert row is not None and not row.deleted and row.version == 1
    assert store.count("item") == 12 + 1  # I013 (page 3) is in; I014..I016 (page 4) are not yet
    assert store.head() > head

    result = run(store, source)

    assert result.deleted == 2
    deletions = [change for change in store.changes(0) if change.op is Op.DELETE]
    assert sorted(change.key for change in deletions) == ["I005", "I009"]
    assert all(change.version == 2 and change.payload is None for change in deletions)
    assert deletions[0].lineage.source_id == "missing from complete snapshot"
    assert store.count("item") == 14


def test_quarantined_rows_are_not_quarantined_again_after_a_resume(store: Store) -> None:
    source = ListSource(SECOND)
    source.crash_after = 3
    with pytest.raises(Crash):
        run(store, source)
    assert sorted(entry.location for entry in store.quarantine(flow=FLOW)) == ["page1:3", "page3:1"]
    source.crash_after = 3
    with pytest.raises(Crash):
        run(store, source)

    result = run(store, source)

    assert result.quarantined == 0
    entries = store.quarantine(flow=FLOW)
    assert sorted((entry.location, entry.record_key) for entry in entries) == [
        ("page1:3", "I901"), ("page3:1", "I902")]
    assert all(entry.system == "erp" and entry.entity == "item" for entry in entries)
    assert all("$.unit_cost (column COST)" in entry.reasons[0] for entry in entries)


def test_rows_the_connector_could_not_parse_are_quarantined_once(store: Store) -> None:
    broken = RejectedRaw(raw="I777;x", reason="expected 4 columns, got 2", location="page2:5")
    source = ListSource(SECOND, problems={1: [broken]})
    source.crash_after = 2
    with pytest.raises(Crash):
        run(store, source)
    run(store, source)

    entries = [entry for entry in store.quarantine(flow=FLOW) if entry.location == "page2:5"]
    assert len(entries) == 1
    assert entries[0].reasons == ["expected 4 columns, got 2"] and entries[0].payload == "I777;x"


def test_a_key_whose_row_does_not_map_is_kept_not_deleted(store: Store) -> None:
    """A row that is in the snapshot but fails mapping is quarantined; the key is not missing from the snapshot,
    so its last accepted state stays (and is not sent to targets as a deletion)."""
    source = ListSource(FIRST)
    run(store, source)
    source.pages = [[item(n) for n in range(1, 12)] + [bad(12)]]

    result = run(store, source)

    assert result.deleted == 0 and result.quarantined == 1
    row = store.get("item", "I012")
    assert row is not None and not row.deleted and row.version == 1
    assert [entry.record_key for entry in store.quarantine(flow=FLOW)] == ["I012"]


def test_an_unchanged_snapshot_writes_nothing(store: Store) -> None:
    source = ListSource(SECOND)
    run(store, source)
    before = snapshot(store)

    result = run(store, source)

    assert result.changed == 0 and result.unchanged == 14
    assert snapshot(store)[:2] == before[:2]


def test_net_change_resumes_after_the_last_committed_page(store: Store) -> None:
    source = ListSource(pages_of([item(n) for n in range(1, 11)], 3))  # 4 pages
    source.crash_after = 2

    with pytest.raises(Crash):
        run(store, source, mode="changes")

    assert checkpoint(store) == InboundCheckpoint(cursor="2")
    assert store.count("item") == 6

    result = run(store, source, mode="changes")

    assert source.reads == [None, "2"]
    assert result.inserted == 4 and result.records_in == 4
    assert checkpoint(store) == InboundCheckpoint(cursor="4")
    log = store.changes(0)
    assert sorted(change.key for change in log) == [f"I{n:03d}" for n in range(1, 11)]
    assert all(row.version == 1 for row in store.current("item"))

    again = run(store, source, mode="changes")

    assert source.reads[-1] == "4" and again.records_in == 0 and store.head() == log[-1].seq


def test_net_change_never_deletes(store: Store) -> None:
    source = ListSource(FIRST)
    run(store, source, mode="changes")
    source.pages = [*FIRST, [item(1, cost="9")]]

    result = run(store, source, mode="changes")

    assert result.deleted == 0 and result.updated == 1 and store.count("item") == 12


@pytest.mark.parametrize("mode", ["full", "changes"])
def test_a_failing_acknowledge_comes_after_data_and_checkpoint_are_committed(store: Store, mode: str) -> None:
    source = ListSource(SECOND)
    source.fail_acknowledge = TransientError("cannot archive", system="erp")

    with pytest.raises(TransientError):
        run(store, source, mode=mode)

    assert sorted(row.key for row in store.current("item")) == ["I001", "I002", "I003"]
    assert [entry.location for entry in store.quarantine(flow=FLOW)] == ["page1:3"]
    saved = checkpoint(store)
    if mode == "full":
        assert saved.snapshot_pages == 1
    else:
        assert saved.cursor == "1"

    source.fail_acknowledge = None
    run(store, source, mode=mode)

    assert all(row.version == 1 for row in store.current("item"))
    assert len(store.changes(0)) == 14
    assert len(store.quarantine(flow=FLOW)) == 2
    assert source.acknowledged[-1] == "4"


class _CheckpointFails:
    """The real store, except that writing a checkpoint fails, late inside each page's transaction."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.inner.transaction() as tx:
            yield cast(Transaction, _FailingTransaction(tx))


class _FailingTransaction:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tx, name)

    def set_checkpoint(self, name: str, value: str) -> None:
        raise StoreError("disk I/O error")


@pytest.mark.parametrize("mode", ["full", "changes"])
def test_a_failure_inside_the_transaction_commits_neither_data_nor_checkpoint(store: Store, mode: str) -> None:
    source = ListSource(SECOND)

    with pytest.raises(StoreError):
        run(cast(Store, _CheckpointFails(store)), source, mode=mode)

    assert store.checkpoint(FLOW) is None
    assert store.head() == 0 and list(store.current("item", include_deleted=True)) == []
    assert store.quarantine() == []
    assert source.acknowledged == []

    run(store, source, mode=mode)

    assert store.count("item") == 14 and len(store.changes(0)) == 14
    assert len(store.quarantine(flow=FLOW)) == 2
