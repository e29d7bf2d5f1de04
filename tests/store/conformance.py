"""The store conformance suite: what every :class:`~syncfabric.store.Store` implementation guarantees.

A backend's test module subclasses :class:`StoreConformance` and provides one fixture, ``store_url``; everything
else comes from here.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator

import msgspec
import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError

from syncfabric.errors import StoreError
from syncfabric.store import (
    IncomingRecord,
    Lineage,
    NewQuarantine,
    NewQuarantineEvent,
    NewSource,
    Op,
    QuarantineAction,
    QuarantineStatus,
    RecordBatch,
    RunStatus,
    Store,
    content_hash,
    open_store,
)

MakeStore = Callable[..., Store]


def rec(key: str, **fields: object) -> IncomingRecord:
    return IncomingRecord(key=key, payload=msgspec.json.encode({"key": key, **fields}))


def assert_utc(value: dt.datetime) -> None:
    assert value.tzinfo is not None and value.utcoffset() == dt.timedelta(0), value
    assert abs(dt.datetime.now(dt.UTC) - value) < dt.timedelta(minutes=5), value


class StoreConformance:
    """Subclasses provide the ``store_url`` fixture (a fresh, empty store per test) and ``store_class``."""

    store_class: type[Store]

    @pytest.fixture
    def store_url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def make_store(self, store_url: str) -> Iterator[MakeStore]:
        opened: list[Store] = []

        def make(*, migrate: bool = True) -> Store:
            store = open_store(store_url, migrate=migrate)
            opened.append(store)
            return store

        yield make
        for store in opened:
            store.close()

    @pytest.fixture
    def store(self, make_store: MakeStore) -> Store:
        return make_store()

    # -- opening, schema -------------------------------------------------------------------------------------------

    def test_open_store_picks_the_backend(self, store: Store) -> None:
        assert isinstance(store, self.store_class)
        assert store.head() == 0

    def test_migrate_twice_is_harmless(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [rec("A")])
        store.migrate()
        store.migrate()
        assert store.get("item", "A") is not None
        assert store.head() == 1

    def test_schema_from_migrations_matches_the_tables(self, store: Store, store_url: str) -> None:
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        from syncfabric.store.tables import VERSION_TABLE, metadata

        engine = create_engine(_driver_url(store_url))
        try:
            with engine.connect() as conn:
                context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
                assert compare_metadata(context, metadata) == []
                assert context.get_current_revision() is not None
        finally:
            engine.dispose()

    def test_a_schema_newer_than_the_code_is_refused(self, store: Store, make_store: MakeStore, store_url: str) -> None:
        from sqlalchemy import text

        engine = create_engine(_driver_url(store_url))
        try:
            with engine.begin() as conn:
                conn.execute(text("UPDATE sf_schema_version SET version_num = '9999'"))
        finally:
            engine.dispose()
        with pytest.raises(StoreError, match="9999"):
            make_store()

    def test_reopening_sees_the_data(self, make_store: MakeStore) -> None:
        first = make_store()
        with first.transaction() as tx:
            tx.apply("item", [rec("A", qty=1)])
            tx.set_checkpoint("inbound.erp", "42")
        first.close()
        again = make_store()
        row = again.get("item", "A")
        assert row is not None and row.version == 1
        assert again.checkpoint("inbound.erp") == "42"
        assert again.head() == 1

    def test_closed_store_refuses_work(self, make_store: MakeStore) -> None:
        store = make_store()
        store.close()
        with pytest.raises(StoreError, match="closed"):
            store.head()

    # -- apply ---------------------------------------------------------------------------------------------------

    def test_apply_inserts_and_reads_back(self, store: Store) -> None:
        lineage = Lineage(source_system="erp-eu", source_id="items.csv:14", batch_id="b1", mapping_version="m3")
        record = IncomingRecord("ITEM-1|P01", msgspec.json.encode({"item": "ITEM-1", "qty": "5"}), lineage)
        with store.transaction() as tx:
            result = tx.apply("item", [record])
        assert (result.inserted, result.updated, result.unchanged, result.deleted) == (1, 0, 0, 0)
        assert result.last_seq == 1 == store.head()
        row = store.get("item", "ITEM-1|P01")
        assert row is not None
        assert (row.entity, row.key, row.version, row.deleted, row.last_seq) == ("item", "ITEM-1|P01", 1, False, 1)
        assert row.payload == record.payload
        assert row.content_hash == content_hash(record.payload)
        [change] = store.changes(0)
        assert (change.seq, change.entity, change.key, change.version, change.op) == (1, "item", "ITEM-1|P01", 1,
                                                                                       Op.UPSERT)
        assert change.payload == record.payload and change.content_hash == row.content_hash
        assert change.lineage == lineage
        assert store.get("item", "nope") is None
        assert store.get("location", "ITEM-1|P01") is None

    def test_same_payload_twice_writes_nothing(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [rec("A", qty=1), rec("B", qty=2)])
        before = store.get("item", "A")
        with store.transaction() as tx:
            again = tx.apply("item", [rec("A", qty=1), rec("B", qty=2)])
        assert (again.inserted, again.updated, again.unchanged, again.changed) == (0, 0, 2, 0)
        assert again.last_seq is None
        assert store.head() == 2
        assert len(store.changes(0)) == 2
        assert store.get("item", "A") == before

    def test_changed_payload_bumps_the_version(self, store: Store) -> None:
        for qty in (1, 2, 3):
            with store.transaction() as tx:
                tx.apply("item", [rec("A", qty=qty)])
        row = store.get("item", "A")
        assert row is not None and row.version == 3 and row.last_seq == 3
        assert row.payload == rec("A", qty=3).payload
        assert [(c.version, c.payload) for c in store.changes(0)] == [
            (n, rec("A", qty=n).payload) for n in (1, 2, 3)
        ]

    def test_mixed_batch_counts_each_outcome(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [rec("A", qty=1), rec("B", qty=1)])
        with store.transaction() as tx:
            result = tx.apply("item", [rec("A", qty=1), rec("B", qty=2), rec("C", qty=1)])
        assert (result.inserted, result.updated, result.unchanged) == (1, 1, 1)
        assert result.last_seq == 4
        assert [(c.seq, c.key, c.version) for c in store.changes(2)] == [(3, "B", 2), (4, "C", 1)]

    def test_large_batches_span_lookup_chunks(self, store: Store) -> None:
        keys = [f"K{i:05d}" for i in range(1234)]
        with store.transaction() as tx:
            first = tx.apply("item", [rec(k, qty=0) for k in keys])
        assert first.inserted == 1234 and first.last_seq == 1234
        with store.transaction() as tx:
            second = tx.apply("item", [rec(k, qty=i % 2) for i, k in enumerate(keys)])
        assert (second.updated, second.unchanged, second.last_seq) == (617, 617, 1234 + 617)
        assert store.count("item") == 1234

    def test_payload_bytes_round_trip_exactly(self, store: Store) -> None:
        payload = msgspec.json.encode({"name": 'Ventil "DN50" \\ Ø 50 mm\n\t✓ 🏭', "qty": "1e-3", "tags": []})
        key = "Ü-1|Pläntß 01|'quoted'"
        with store.transaction() as tx:
            tx.apply("item", [IncomingRecord(key, payload)])
        row = store.get("item", key)
        assert row is not None and row.payload == payload
        assert store.changes(0)[0].payload == payload and store.changes(0)[0].key == key
        with store.transaction() as tx:
            assert tx.apply("item", [IncomingRecord(key, payload)]).unchanged == 1

    def test_a_payload_that_is_not_utf8_is_refused(self, store: Store) -> None:
        with pytest.raises(StoreError, match="UTF-8"), store.transaction() as tx:
            tx.apply("item", [rec("A"), IncomingRecord("B", b'{"x": "\xff"}')])
        assert store.head() == 0

    def test_keys_must_be_unique_within_one_call(self, store: Store) -> None:
        with pytest.raises(StoreError, match="'A'"), store.transaction() as tx:
            tx.apply("item", [rec("A", qty=1), rec("B"), rec("A", qty=2)])
        assert store.head() == 0

    def test_apply_and_delete_of_nothing(self, store: Store) -> None:
        with store.transaction() as tx:
            assert tx.apply("item", []).last_seq is None
            assert tx.delete("item", []).last_seq is None
        assert store.head() == 0

    def test_writes_are_seen_by_later_writes_of_the_same_transaction(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [rec("A", qty=1)])
            second = tx.apply("item", [rec("A", qty=2)])
            third = tx.apply("item", [rec("A", qty=2)])
        assert second.updated == 1 and third.unchanged == 1
        row = store.get("item", "A")
        assert row is not None and row.version == 2

    # -- change log ----------------------------------------------------------------------------------------------

    def test_one_global_sequence_across_entities(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [rec("A"), rec("B")])
            tx.apply("location", [rec("P01")])
        with store.transaction() as tx:
            tx.apply("item", [rec("C")])
            tx.delete("location", ["P01"])
            tx.apply("supplier", [rec("S1")])
        changes = store.changes(0)
        assert [(c.seq, c.entity, c.key) for c in changes] == [
            (1, "item", "A"), (2, "item", "B"), (3, "location", "P01"), (4, "item", "C"), (5, "location", "P01"),
            (6, "supplier", "S1"),
        ]
        assert store.head() == 6

    def test_changes_filters_by_entity_and_pages(self, store: Store) -> None:
        for i in range(7):
            with store.transaction() as tx:
                tx.apply("item", [rec(f"I{i}")])
                tx.apply("location", [rec(f"L{i}")])
                tx.apply("supplier", [rec(f"S{i}")])
        assert [c.key for c in store.changes(0, entities=["location"])] == [f"L{i}" for i in range(7)]
        both = store.changes(0, entities=["item", "supplier"], limit=100)
        assert {c.entity for c in both} == {"item", "supplier"} and len(both) == 14
        assert store.changes(0, entities=[]) == []
        assert store.changes(store.head()) == []

        paged: list[int] = []
        after = 0
        while page := store.changes(after, limit=4):
            assert len(page) <= 4
            paged += [c.seq for c in page]
            after = page[-1].seq
        assert paged == list(range(1, 22))

        after, items = 0, []
        while page := store.changes(after, entities=["item"], limit=3):
            items += [c.key for c in page]
            after = page[-1].seq
        assert items == [f"I{i}" for i in range(7)]
        assert [c.seq for c in store.changes(10, limit=2)] == [11, 12]

    # -- delete ---------------------------------------------------------------------------------------------------

    def test_delete_writes_tombstones_for_live_keys_only(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [rec("A"), rec("B")])
        lineage = Lineage(source_system="erp-eu", batch_id="full-7")
        with store.transaction() as tx:
            result = tx.delete("item", ["A", "unknown", "A"], lineage)
        assert (result.deleted, result.changed, result.last_seq) == (1, 1, 3)
        row = store.get("item", "A")
        assert row is not None
        assert (row.deleted, row.version, row.payload, row.last_seq) == (True, 2, None, 3)
        tombstone = store.changes(2)[0]
        assert (tombstone.op, tombstone.version, tombstone.payload, tombstone.key) == (Op.DELETE, 2, None, "A")
        assert tombstone.lineage == lineage

        with store.transaction() as tx:
            again = tx.delete("item", ["A"])
        assert (again.deleted, again.last_seq) == (0, None)
        assert store.head() == 3
        assert store.count("item") == 1
        assert [r.key for r in store.current("item")] == ["B"]
        assert [(r.key, r.deleted) for r in store.current("item", include_deleted=True)] == [("A", True),
                                                                                            ("B", False)]

    def test_a_deleted_key_that_comes_back_is_an_update(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [rec("A", qty=1)])
            tx.delete("item", ["A"])
        with store.transaction() as tx:
            result = tx.apply("item", [rec("A", qty=1)])  # the very payload it had before deletion
        assert (result.inserted, result.updated, result.unchanged) == (0, 1, 0)
        row = store.get("item", "A")
        assert row is not None
        assert (row.deleted, row.version, row.payload) == (False, 3, rec("A", qty=1).payload)
        assert [(c.op, c.version) for c in store.changes(0)] == [(Op.UPSERT, 1), (Op.DELETE, 2), (Op.UPSERT, 3)]
        assert store.count("item") == 1

    # -- state ---------------------------------------------------------------------------------------------------

    def test_current_is_ordered_by_key_and_per_entity(self, store: Store) -> None:
        keys = [f"K{i:04d}" for i in range(2500)]
        with store.transaction() as tx:
            tx.apply("item", [rec(k) for k in reversed(keys)])
            tx.apply("location", [rec("K0001")])
        rows = list(store.current("item"))
        assert [r.key for r in rows] == keys
        assert all(r.entity == "item" for r in rows)
        assert store.count("item") == 2500 and store.count("location") == 1 and store.count("nothing") == 0
        assert list(store.current("nothing")) == []

    def test_timestamps_are_utc(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [rec("A")])
            [qid] = tx.add_quarantine([NewQuarantine("f", "s", "item", ["bad"], "{}")])
        run_id = store.start_run("f")
        store.finish_run(run_id, RunStatus.SUCCEEDED)
        row = store.get("item", "A")
        assert row is not None
        assert_utc(row.updated_at)
        assert_utc(store.changes(0)[0].recorded_at)
        entry = store.quarantine(ids=[qid])[0]
        assert_utc(entry.created_at)
        assert_utc(entry.updated_at)
        [run] = store.runs()
        assert_utc(run.started_at)
        assert run.finished_at is not None
        assert_utc(run.finished_at)
        assert run.started_at <= run.finished_at

    # -- transactions and checkpoints -------------------------------------------------------------------------

    def test_a_failing_transaction_leaves_nothing(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [rec("A", qty=1)])
            tx.set_checkpoint("inbound.erp", "1")

        class Boom(Exception):
            pass

        with pytest.raises(Boom), store.transaction() as tx:
            tx.apply("item", [rec("A", qty=2), rec("B")])
            tx.delete("item", ["A"])
            tx.set_checkpoint("inbound.erp", "2")
            tx.add_quarantine([NewQuarantine("inbound.erp", "erp", "item", ["bad"], "{}")])
            tx.put_xref("erp", "item", "100", "A")
            raise Boom
        assert store.checkpoint("inbound.erp") == "1"
        row = store.get("item", "A")
        assert row is not None and row.version == 1 and not row.deleted
        assert store.get("item", "B") is None
        assert store.head() == 1
        assert store.quarantine() == []
        assert store.xref("erp", "item", "100") is None
        # The sequence goes on above everything committed (a backend may skip the numbers the rollback took).
        with store.transaction() as tx:
            last = tx.apply("item", [rec("C")]).last_seq
        assert last is not None and last > 1 and store.head() == last
        assert [c.key for c in store.changes(0)] == ["A", "C"]

    def test_checkpoint_commits_with_the_data(self, store: Store) -> None:
        assert store.checkpoint("outbound.planning") is None
        with store.transaction() as tx:
            result = tx.apply("item", [rec("A"), rec("B")])
            tx.set_checkpoint("outbound.planning", str(result.last_seq))
        assert store.checkpoint("outbound.planning") == "2"
        assert store.head() == 2
        with store.transaction() as tx:
            tx.set_checkpoint("outbound.planning", "files: a.csv, b.csv")
        assert store.checkpoint("outbound.planning") == "files: a.csv, b.csv"

    def test_data_and_checkpoint_are_invisible_until_commit(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [rec("A")])
            tx.set_checkpoint("cp", "1")
            assert store.get("item", "A") is None
            assert store.checkpoint("cp") is None
            assert store.head() == 0
        assert store.get("item", "A") is not None and store.checkpoint("cp") == "1"

    def test_a_transaction_is_over_when_its_block_ends(self, store: Store) -> None:
        with store.transaction() as tx:
            pass
        with pytest.raises(StoreError, match="over"):
            tx.apply("item", [rec("A")])

    def test_nested_write_transactions_are_refused(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [rec("A")])
            with pytest.raises(StoreError, match="transaction"), store.transaction():
                pass
            with pytest.raises(StoreError, match="transaction"):
                store.start_run("f")
        assert store.get("item", "A") is not None

    def test_driver_errors_become_store_errors(self, make_store: MakeStore) -> None:
        bare = make_store(migrate=False)  # no tables yet
        with pytest.raises(StoreError) as raised:
            bare.get("item", "A")
        assert raised.value.__cause__ is not None
        assert not isinstance(raised.value.__cause__, SQLAlchemyError)  # the driver's own exception
        with pytest.raises(StoreError), bare.transaction() as tx:
            tx.apply("item", [rec("A")])

    # -- quarantine ----------------------------------------------------------------------------------------------

    def test_quarantine_add_filter_and_status(self, store: Store) -> None:
        entries = [
            NewQuarantine("inbound.erp-eu", "erp-eu", "item", ["unknown unit 'BOX' @ $.uom"], '{"uom": "BOX"}',
                          record_key="I1", location="items.csv:14"),
            NewQuarantine("inbound.erp-eu", "erp-eu", "item", ["qty must be >= 0 @ $.qty", "missing plant @ $"],
                          '{"qty": -1}', record_key="I2", location="items.csv:15"),
            NewQuarantine("inbound.mes", "mes-p01", "work_order", ['bad "status" 100% @ $.status'], "{}"),
        ]
        with store.transaction() as tx:
            ids = tx.add_quarantine(entries)
        assert len(ids) == 3 and len(set(ids)) == 3
        got = store.quarantine()
        assert [e.id for e in got] == ids
        assert [e.record_key for e in store.quarantine(ids=ids)] == ["I1", "I2", ""]  # ids follow entry order
        first = got[0]
        assert (first.flow, first.system, first.entity, first.record_key, first.location) == (
            "inbound.erp-eu", "erp-eu", "item", "I1", "items.csv:14")
        assert first.reasons == ["unknown unit 'BOX' @ $.uom"] and first.payload == '{"uom": "BOX"}'
        assert first.status is QuarantineStatus.OPEN
        assert got[1].reasons == ["qty must be >= 0 @ $.qty", "missing plant @ $"]

        assert [e.id for e in store.quarantine(flow="inbound.mes")] == [ids[2]]
        assert [e.id for e in store.quarantine(system="erp-eu")] == ids[:2]
        assert [e.id for e in store.quarantine(reason="missing plant")] == [ids[1]]
        assert [e.id for e in store.quarantine(reason='"status" 100%')] == [ids[2]]
        assert [e.id for e in store.quarantine(reason="@ $")] == ids
        assert store.quarantine(reason="@ $.qty\", \"missing") == []  # never across two reasons
        assert store.quarantine(reason="MISSING PLANT") == []  # case matters
        assert store.quarantine(flow="inbound.erp-eu", reason="BOX") == [first]
        assert store.quarantine(ids=[]) == []
        assert store.quarantine_counts() == {"inbound.erp-eu": 2, "inbound.mes": 1}

        with store.transaction() as tx:
            tx.set_quarantine_status([ids[0], ids[0]], QuarantineStatus.REPLAYED)
            tx.set_quarantine_status([ids[2]], QuarantineStatus.DISCARDED)
        assert [e.id for e in store.quarantine()] == [ids[1]]
        assert [e.id for e in store.quarantine(status=QuarantineStatus.REPLAYED)] == [ids[0]]
        assert [e.id for e in store.quarantine(status=None)] == ids
        replayed = store.quarantine(status=None, ids=[ids[0]])[0]
        assert replayed.status is QuarantineStatus.REPLAYED and replayed.updated_at >= replayed.created_at
        assert store.quarantine_counts() == {"inbound.erp-eu": 1}

        with pytest.raises(StoreError, match="do not exist"), store.transaction() as tx:
            tx.set_quarantine_status([ids[1], 999_999], QuarantineStatus.DISCARDED)
        assert store.quarantine(ids=[ids[1]])[0].status is QuarantineStatus.OPEN

    def test_quarantine_edit_and_history(self, store: Store) -> None:
        with store.transaction() as tx:
            first, second = tx.add_quarantine([
                NewQuarantine("inbound.erp", "erp", "inventory_balance", ["on_hand must be ≥ 0 @ $.on_hand"],
                              '{"QTY": "-1"}', record_key="A|P1|"),
                NewQuarantine("inbound.erp", "erp", "inventory_balance", ["x @ $"], "{}"),
            ])
        created = store.quarantine_events(first)
        assert [e.action for e in created] == [QuarantineAction.CREATED]
        assert created[0].entry_id == first
        assert_utc(created[0].recorded_at)

        with store.transaction() as tx:
            tx.update_quarantine(first, payload='{"QTY": "1"}')
            tx.add_quarantine_events([NewQuarantineEvent(first, QuarantineAction.EDITED, "QTY=1", actor="ops")])
        entry = store.quarantine(ids=[first])[0]
        assert entry.payload == '{"QTY": "1"}' and entry.reasons == ["on_hand must be ≥ 0 @ $.on_hand"]
        with store.transaction() as tx:
            tx.update_quarantine(first, reasons=["unknown item 'A' @ $.item_id"])
            tx.add_quarantine_events([
                NewQuarantineEvent(first, QuarantineAction.REPLAY_FAILED, "unknown item 'A' @ $.item_id"),
                NewQuarantineEvent(second, QuarantineAction.DISCARDED),
            ])
            tx.set_quarantine_status([second], QuarantineStatus.DISCARDED)
        entry = store.quarantine(ids=[first])[0]
        assert entry.payload == '{"QTY": "1"}' and entry.reasons == ["unknown item 'A' @ $.item_id"]
        history = store.quarantine_events(first)
        assert [(e.action, e.detail, e.actor) for e in history] == [
            (QuarantineAction.CREATED, "", ""), (QuarantineAction.EDITED, "QTY=1", "ops"),
            (QuarantineAction.REPLAY_FAILED, "unknown item 'A' @ $.item_id", ""),
        ]
        assert [e.action for e in store.quarantine_events(second)] == [QuarantineAction.CREATED,
                                                                        QuarantineAction.DISCARDED]
        assert store.quarantine_events(999_999) == []
        with pytest.raises(StoreError, match="no such entry"), store.transaction() as tx:
            tx.update_quarantine(999_999, payload="{}")

    def test_upgrading_gives_existing_entries_their_created_step(self, make_store: MakeStore, store_url: str) -> None:
        _quarantined_at_revision(make_store, store_url, "0001")
        store = make_store()
        (entry,) = store.quarantine()
        (event,) = store.quarantine_events(entry.id)
        assert event.action is QuarantineAction.CREATED and event.recorded_at == entry.created_at

    # -- batch reads -----------------------------------------------------------------------------------------------

    def test_get_many_returns_live_rows_of_known_keys(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [rec(f"I{n:04}", n=n) for n in range(1200)])
            tx.apply("location", [rec("I0001")])
            tx.delete("item", ["I0002"])
        wanted = [f"I{n:04}" for n in range(0, 1200, 2)] + ["I0000", "NOPE"]
        found = store.get_many("item", wanted)
        assert set(found) == {f"I{n:04}" for n in range(0, 1200, 2)} - {"I0002"}
        row = found["I0004"]
        assert row.entity == "item" and row.version == 1 and msgspec.json.decode(row.payload or b"")["n"] == 4
        assert store.get_many("item", []) == {}
        assert set(store.get_many("location", ["I0001", "I0000"])) == {"I0001"}

    def test_stored_fields_tells_the_known_keys_and_one_field_of_each(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [rec(f"I{n:04}", n=n, at=f"2026-03-02T08:{n % 60:02}:00Z") for n in range(700)])
            tx.apply("item", [rec("I0698", n=698)])  # no field "at" any more
            tx.apply("location", [rec("I0001", at="elsewhere")])
            tx.delete("item", ["I0002"])
        wanted = [f"I{n:04}" for n in range(0, 1400, 2)] + ["I0004", "NOPE"]
        with store.transaction() as tx:
            found = tx.stored_fields("item", wanted, "at")
            assert set(found) == {f"I{n:04}" for n in range(0, 700, 2)}  # deleted keys too (they have a state)
            assert found["I0004"] == "2026-03-02T08:04:00Z" and found["I0640"] == "2026-03-02T08:40:00Z"
            assert found["I0002"] is None and found["I0698"] is None
            assert tx.stored_fields("item", ["I0004", "I0006"], None) == {"I0004": None, "I0006": None}
            assert tx.stored_fields("item", [], "at") == {}

    # -- xref ----------------------------------------------------------------------------------------------------

    def test_xref_externals_looks_up_a_batch_of_keys_at_once(self, store: Store) -> None:
        with store.transaction() as tx:
            for n in range(1200):  # more than one chunk of keys
                tx.put_xref("erp", "item", f"MAT-{n}", f"K{n}")
            tx.put_xref("other", "item", "X-1", "K1")
        keys = [f"K{n}" for n in range(0, 1200, 2)] + ["K-unlinked"]
        assert store.xref_externals("erp", "item", keys) == {f"K{n}": f"MAT-{n}" for n in range(0, 1200, 2)}
        assert store.xref_externals("other", "item", ["K1", "K2"]) == {"K1": "X-1"}
        assert store.xref_externals("erp", "location", ["K1"]) == {}
        assert store.xref_externals("erp", "item", []) == {}

    def test_xref_links_both_ways_and_refuses_conflicts(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.put_xref("erp-eu", "item", "100045", "ITEM-1")
            tx.put_xref("erp-eu", "item", "100045", "ITEM-1")  # same pair: no-op
            tx.put_xref("erp-us", "item", "100045", "ITEM-2")  # another system may reuse the id
            tx.put_xref("erp-eu", "location", "100045", "P01")  # so may another entity
        assert store.xref("erp-eu", "item", "100045") == "ITEM-1"
        assert store.xref_external("erp-eu", "item", "ITEM-1") == "100045"
        assert store.xref("erp-us", "item", "100045") == "ITEM-2"
        assert store.xref("erp-eu", "location", "100045") == "P01"
        assert store.xref("erp-eu", "item", "999") is None
        assert store.xref_external("erp-eu", "item", "ITEM-9") is None

        with pytest.raises(StoreError) as raised, store.transaction() as tx:
            tx.put_xref("erp-eu", "item", "100045", "ITEM-3")
        message = str(raised.value)
        assert "100045" in message and "ITEM-1" in message and "ITEM-3" in message

        with pytest.raises(StoreError) as raised, store.transaction() as tx:
            tx.put_xref("erp-eu", "item", "200000", "ITEM-1")
        message = str(raised.value)
        assert "200000" in message and "100045" in message and "ITEM-1" in message
        assert store.xref("erp-eu", "item", "200000") is None

    # -- runs ----------------------------------------------------------------------------------------------------

    def test_runs_start_finish_and_list_newest_first(self, store: Store) -> None:
        first = store.start_run("inbound.erp")
        second = store.start_run("outbound.planning")
        third = store.start_run("inbound.erp")
        assert first < second < third
        running = store.runs()[0]
        assert (running.id, running.status, running.finished_at, running.detail) == (third, RunStatus.RUNNING,
                                                                                     None, {})
        store.finish_run(first, RunStatus.SUCCEEDED, records_in=10, records_out=8, unchanged=1, quarantined=1,
                         detail={"files": ["a.csv"], "seconds": 1.5})
        store.finish_run(third, RunStatus.FAILED, detail={"error": "timeout"})
        assert [r.id for r in store.runs()] == [third, second, first]
        assert [r.id for r in store.runs("inbound.erp")] == [third, first]
        assert [r.id for r in store.runs(limit=1)] == [third]
        done = store.runs("inbound.erp")[1]
        assert (done.status, done.records_in, done.records_out, done.unchanged, done.quarantined) == (
            RunStatus.SUCCEEDED, 10, 8, 1, 1)
        assert done.detail == {"files": ["a.csv"], "seconds": 1.5}
        assert store.runs("inbound.erp")[0].status is RunStatus.FAILED
        with pytest.raises(StoreError, match="no such run"):
            store.finish_run(999_999, RunStatus.SUCCEEDED)
        with pytest.raises(StoreError, match="JSON"):
            store.finish_run(second, RunStatus.SUCCEEDED, detail={"when": object()})

    # -- concurrency -----------------------------------------------------------------------------------------

    def test_concurrent_writers_keep_sequence_in_commit_order(self, make_store: MakeStore) -> None:
        """Two writers (separate store objects, like two processes) append while a reader polls
        ``changes(after=checkpoint)`` and moves its checkpoint to the last seq it saw: it must never miss one."""
        writers = [make_store() for _ in range(2)]
        reader = make_store()
        transactions, per_transaction = 60, 3
        done = threading.Event()
        seen: list[int] = []
        failures: list[BaseException] = []

        def write(n: int) -> None:
            try:
                for i in range(transactions):
                    with writers[n].transaction() as tx:
                        tx.apply(f"entity{n}", [rec(f"k{i}-{j}", writer=n) for j in range(per_transaction)])
                        tx.set_checkpoint(f"writer{n}", str(i))
            except BaseException as exc:
                failures.append(exc)

        def read() -> None:
            try:
                checkpoint = 0
                while True:
                    finished = done.is_set()
                    page = reader.changes(checkpoint, limit=7)
                    seen.extend(c.seq for c in page)
                    if page:
                        checkpoint = page[-1].seq
                    elif finished:
                        return
                    else:
                        time.sleep(0.0005)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
        polling = threading.Thread(target=read)
        polling.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        done.set()
        polling.join(timeout=120)
        assert not failures, failures

        total = 2 * transactions * per_transaction
        every = [c.seq for c in reader.changes(0, limit=total + 10)]
        assert every == list(range(1, total + 1))
        assert seen == every  # no entry was missed or seen twice
        for n in range(2):  # per key and per writer, the log keeps each writer's own order
            mine = [c.key for c in reader.changes(0, entities=[f"entity{n}"], limit=total)]
            assert mine == [f"k{i}-{j}" for i in range(transactions) for j in range(per_transaction)]

    # -- lineage and raw source records ----------------------------------------------------------------------------

    def test_apply_names_the_keys_it_changed(self, store: Store) -> None:
        with store.transaction() as tx:
            assert tx.apply("item", [rec("A", n=1), rec("B", n=1)]).changed_keys == ["A", "B"]
            assert tx.apply("item", [rec("A", n=1), rec("C"), rec("B", n=2)]).changed_keys == ["C", "B"]
            assert tx.apply("item", [rec("A", n=1)]).changed_keys == []

    def test_history_gives_every_version_of_a_key_with_its_lineage(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [IncomingRecord("A", b'{"n":1}', Lineage("erp", "items_1.csv:2", "b1", "items@1"))])
            tx.apply("item", [rec("B")])
        with store.transaction() as tx:
            tx.apply("item", [IncomingRecord("A", b'{"n":2}', Lineage("erp", "items_2.csv:5", "b2", "items@2"))])
            tx.delete("item", ["A"], Lineage("erp", "missing from complete snapshot", "b3", "items@2"))
        history = store.history("item", "A")
        assert [(c.version, c.op, c.lineage.source_id, c.lineage.mapping_version) for c in history] == [
            (1, Op.UPSERT, "items_1.csv:2", "items@1"), (2, Op.UPSERT, "items_2.csv:5", "items@2"),
            (3, Op.DELETE, "missing from complete snapshot", "items@2")]
        assert store.history("item", "nope") == []

    def test_sources_keep_the_newest_raw_record_of_live_keys(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [IncomingRecord(k, msgspec.json.encode({"k": k}), Lineage("erp", "", "b", "items@1"))
                              for k in ("A", "B", "C")])
            tx.put_sources("item", [NewSource("A", "items-in", '{"NO": "A"}', "items.csv:2"),
                                    NewSource("B", "items-in", '{"NO": "B"}', "items.csv:3"),
                                    NewSource("C", "other-in", '{"NO": "C"}'),
                                    NewSource("B", "items-in", '{"NO": "B", "X": 1}', "items.csv:4")])
        got = list(store.sources("item"))
        assert [(s.key, s.flow, s.raw, s.source_id, s.mapping_version, s.version) for s in got] == [
            ("A", "items-in", '{"NO": "A"}', "items.csv:2", "items@1", 1),
            ("B", "items-in", '{"NO": "B", "X": 1}', "items.csv:4", "items@1", 1),
            ("C", "other-in", '{"NO": "C"}', "", "items@1", 1)]
        assert got[0].payload == b'{"k":"A"}'
        assert [s.key for s in store.sources("item", flow="other-in")] == ["C"]
        assert [s.key for s in store.sources("item", keys=["B", "Z"])] == ["B"]
        with store.transaction() as tx:  # the same raw record again: kept as it was; a new one replaces it
            tx.put_sources("item", [NewSource("A", "items-in", '{"NO": "A"}', "items_2.csv:9"),
                                    NewSource("C", "other-in", '{"NO": "C2"}', "c.csv:1")])
            tx.delete("item", ["B"])
        got = list(store.sources("item"))
        assert [(s.key, s.raw, s.source_id) for s in got] == [
            ("A", '{"NO": "A"}', "items.csv:2"), ("C", '{"NO": "C2"}', "c.csv:1")]  # B is deleted
        with store.transaction() as tx:
            tx.put_sources("item", [])
        assert list(store.sources("location")) == []

    def test_a_batch_applied_as_new_is_stored_as_apply_would_even_if_keys_exist(self, store: Store) -> None:
        def batch(keys: list[str], n: int = 1) -> RecordBatch:
            payloads = [msgspec.json.encode({"k": key, "n": n}) for key in keys]
            raws = [msgspec.json.encode({"NO": key, "N": n}) for key in keys]
            return RecordBatch(keys, [p.decode() for p in payloads], [content_hash(p) for p in payloads],
                               [f"items.csv:{i + 2}" for i in range(len(keys))], [f"in-{key}-{n}" for key in keys],
                               "erp", "b1", "items@1", "items-in", [r.decode() for r in raws])

        def contents(entity: str) -> tuple[object, ...]:
            return ([(r.key, r.version, r.content_hash, r.deleted, r.payload)
                     for r in store.current(entity, include_deleted=True)],
                    [(c.key, c.version, c.op, c.content_hash, c.payload, c.lineage)
                     for c in store.changes(0, entities=[entity], limit=100)],
                    [(s.key, s.flow, s.raw, s.source_id) for s in store.sources(entity)],
                    store.live_inputs(entity))

        results = []
        for entity, new in (("item", False), ("part", True)):  # the same writes, without and with ``new``
            with store.transaction() as tx:  # A is live, B a tombstone
                tx.apply(entity, [rec("A"), rec("B")])
                tx.delete(entity, ["B"])
            with store.transaction() as tx:
                first = tx.apply_batch(entity, batch(["C", "D"]), new=new)  # keys without a state
            with store.transaction() as tx:
                second = tx.apply_batch(entity, batch(["E", "A", "B"], n=2), new=new)  # two have one
            assert (first.inserted, first.updated, first.changed_keys) == (2, 0, ["C", "D"])
            assert (second.inserted, second.updated, second.changed_keys) == (1, 2, ["E", "A", "B"])
            assert second.last_seq == store.head()
            results.append(contents(entity))
        assert results[0] == results[1]
        state, log, sources, inputs = results[1]
        assert [(key, version, deleted) for key, version, _, deleted, _ in state] == [
            ("A", 2, False), ("B", 3, False), ("C", 1, False), ("D", 1, False), ("E", 1, False)]
        assert [(key, version) for key, version, *_ in log] == [
            ("A", 1), ("B", 1), ("B", 2), ("C", 1), ("D", 1), ("E", 1), ("A", 2), ("B", 3)]
        assert log[3][5] == Lineage("erp", "items.csv:2", "b1", "items@1")
        assert ("C", "items-in", '{"NO":"C","N":1}', "items.csv:2") in sources
        assert inputs == {"A": "in-A-2", "B": "in-B-2", "C": "in-C-1", "D": "in-D-1", "E": "in-E-2"}
        changes = store.changes(0, limit=100)  # what this process wrote, as a consumer reads it
        assert len(changes) == 16 and [c.seq for c in changes] == sorted({c.seq for c in changes})
        assert (changes[11].entity, changes[11].payload) == ("part", msgspec.json.encode({"k": "C", "n": 1}))

    def test_inserting_a_batch_as_new_writes_all_of_it_or_nothing(self, store: Store) -> None:
        def batch(keys: list[str]) -> RecordBatch:
            payloads = [msgspec.json.encode({"k": key}) for key in keys]
            return RecordBatch(keys, [p.decode() for p in payloads], [content_hash(p) for p in payloads],
                               [f"events [{i}]" for i in range(len(keys))], [None] * len(keys), "mes", "b1",
                               "events@1")

        with store.transaction() as tx:
            tx.apply("item", [rec("A")])
            tx.delete("item", ["A"])  # a tombstone is a state too
            tx.apply("item", [rec("B")])
        head = store.head()
        for keys in (["C", "A"], ["D", "B", "E"], ["F", "F"]):
            with store.transaction() as tx:
                assert tx.insert_new("item", batch(keys)) is None
                tx.set_checkpoint("in", "x")  # the transaction goes on, with nothing of the batch in it
            assert store.head() == head
        assert sorted(r.key for r in store.current("item", include_deleted=True)) == ["A", "B"]
        with store.transaction() as tx:
            inserted = tx.insert_new("item", batch(["C", "D"]))
        assert inserted is not None
        assert (inserted.inserted, inserted.changed_keys, inserted.last_seq) == (2, ["C", "D"], store.head())
        assert [(c.key, c.version, c.lineage.source_id) for c in store.changes(head, limit=10)] == [
            ("C", 1, "events [0]"), ("D", 1, "events [1]")]
        assert store.checkpoint("in") == "x"

    def test_upgrading_moves_the_raw_records_onto_the_state_rows(self, make_store: MakeStore, store_url: str
                                                                  ) -> None:
        state = ("INSERT INTO sf_state (entity, key, version, content_hash, payload, deleted, last_seq, updated_at,"
                 " input_hash) VALUES ")
        source = "INSERT INTO sf_source (entity, key, flow, source_id, raw_hash, payload, updated_at) VALUES "
        _at_revision(make_store, store_url, "0013", [
            state + "('item', 'A', 1, 'h1', '{\"k\":\"A\"}', false, 1, :at, 'in-A')",
            state + "('item', 'B', 1, 'h2', '{\"k\":\"B\"}', false, 2, :at, NULL)",  # no raw record kept
            state + "('item', 'C', 2, '', NULL, true, 3, :at, NULL)",  # deleted
            source + "('item', 'A', 'items-in', 'items.csv:2', 'r1', '{\"NO\":\"A\"}', :at)",
            source + "('item', 'C', 'items-in', 'items.csv:3', 'r2', '{\"NO\":\"C\"}', :at)",
            source + "('item', 'Z', 'items-in', 'items.csv:4', 'r3', '{\"NO\":\"Z\"}', :at)",  # no state
        ])
        store = make_store()
        assert [(s.key, s.flow, s.source_id, s.raw, s.payload, s.version) for s in store.sources("item")] == [
            ("A", "items-in", "items.csv:2", '{"NO":"A"}', b'{"k":"A"}', 1)]
        with store.transaction() as tx:  # C comes back, with the raw record it was deleted with
            tx.apply("item", [rec("C")])
            tx.put_sources("item", [NewSource("A", "items-in", '{"NO":"A"}', "items_2.csv:2"),
                                    NewSource("B", "items-in", '{"NO":"B"}', "items_2.csv:3")])
        assert [(s.key, s.source_id, s.raw) for s in store.sources("item")] == [
            ("A", "items.csv:2", '{"NO":"A"}'), ("B", "items_2.csv:3", '{"NO":"B"}'),
            ("C", "items.csv:3", '{"NO":"C"}')]
        assert store.get("item", "A").payload == b'{"k":"A"}'  # type: ignore[union-attr]

    def test_a_large_batch_applied_as_new_is_stored_as_apply_would(self, store: Store) -> None:
        keys = [f"K{number:04d}" for number in range(257)]  # more than one statement's rows of values, and a rest

        def batch(raw: bool) -> RecordBatch:
            payloads = [msgspec.json.encode({"k": key}).decode() for key in keys]
            raws = [msgspec.json.encode({"NO": key}).decode() for key in keys]
            return RecordBatch(keys, payloads, [content_hash(p.encode()) for p in payloads],
                               [f"items.csv:{i + 2}" for i in range(len(keys))], [f"in-{key}" for key in keys],
                               "erp", "b1", "items@1", "items-in", raws if raw else None)

        def contents(entity: str) -> tuple[object, ...]:
            return ([(r.key, r.version, r.content_hash, r.deleted, r.payload) for r in store.current(entity)],
                    [(c.key, c.version, c.op, c.content_hash, c.payload, c.lineage)
                     for c in store.changes(0, entities=[entity], limit=1000)],
                    [(s.key, s.flow, s.raw, s.source_id) for s in store.sources(entity)],
                    store.live_inputs(entity))

        for raw in (True, False):
            with store.transaction() as tx:
                tx.apply_batch(f"item{raw}", batch(raw))
                assert tx.apply_batch(f"part{raw}", batch(raw), new=True).inserted == len(keys)
            assert contents(f"item{raw}") == contents(f"part{raw}")
            assert len(contents(f"part{raw}")[2]) == (len(keys) if raw else 0)
        assert next(store.sources("partTrue", keys=["K0256"])).raw == '{"NO":"K0256"}'

    def test_upgrading_keeps_existing_entries_without_a_mapping_version(self, make_store: MakeStore,
                                                                         store_url: str) -> None:
        _quarantined_at_revision(make_store, store_url, "0002")
        store = make_store()
        (entry,) = store.quarantine()
        assert entry.mapping_version == "" and entry.reasons == ["bad @ $"]
        assert list(store.sources("item")) == []

    def test_quarantine_entries_keep_the_mapping_version_that_rejected_them(self, store: Store) -> None:
        with store.transaction() as tx:
            (entry_id,) = tx.add_quarantine([NewQuarantine("in", "erp", "item", ["bad @ $"], "{}",
                                                           mapping_version="items@1+units@ab")])
        assert store.quarantine(ids=[entry_id])[0].mapping_version == "items@1+units@ab"
        with store.transaction() as tx:
            tx.update_quarantine(entry_id, reasons=["worse @ $"], mapping_version="items@2")
        entry = store.quarantine(ids=[entry_id])[0]
        assert entry.mapping_version == "items@2" and entry.reasons == ["worse @ $"]

    def test_current_as_of_is_the_state_right_after_a_sequence(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [rec("a", v=1), rec("b", v=1), rec("c", v=1)])
        cut = store.head()
        with store.transaction() as tx:
            tx.apply("item", [rec("a", v=2), rec("d", v=1)])  # changed, and created after the cut
            tx.delete("item", ["b"])
            tx.apply("location", [rec("x", v=1)])
        with store.transaction() as tx:
            tx.apply("item", [rec("a", v=3)])

        def view(rows: Iterator) -> list[tuple[str, int, bool, bytes | None]]:
            return [(row.key, row.version, row.deleted, row.payload) for row in rows]

        assert view(store.current_as_of("item", cut)) == [
            ("a", 1, False, rec("a", v=1).payload), ("b", 1, False, rec("b", v=1).payload),
            ("c", 1, False, rec("c", v=1).payload)]
        assert view(store.current_as_of("location", cut)) == []
        now = store.head()
        assert view(store.current_as_of("item", now)) == view(store.current("item"))
        assert [(row.key, row.deleted) for row in store.current_as_of("item", now, include_deleted=True)] == [
            ("a", False), ("b", True), ("c", False), ("d", False)]
        [a_then] = [row for row in store.current_as_of("item", cut) if row.key == "a"]
        assert a_then.content_hash == content_hash(rec("a", v=1).payload) and a_then.last_seq <= cut
        assert view(store.current_as_of("item", 0)) == []

    def test_current_as_of_after_a_key_walks_only_the_keys_that_follow_it(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [rec(k, v=1) for k in ("a", "b", "c", "d")])
        cut = store.head()
        with store.transaction() as tx:
            tx.apply("item", [rec("c", v=2), rec("bb", v=1)])  # changed, and created, after the cut
            tx.delete("item", ["d"])

        def view(rows: Iterator) -> list[tuple[str, int, bool]]:
            return [(row.key, row.version, row.deleted) for row in rows]

        assert view(store.current_as_of("item", cut, include_deleted=True, after_key="b")) == [
            ("c", 1, False), ("d", 1, False)]
        assert view(store.current_as_of("item", cut, after_key="a")) == [("b", 1, False), ("c", 1, False),
                                                                        ("d", 1, False)]
        assert view(store.current_as_of("item", cut, after_key="bb")) == [("c", 1, False), ("d", 1, False)]
        assert view(store.current_as_of("item", cut, after_key="d")) == []
        now = store.head()
        assert view(store.current_as_of("item", now, include_deleted=True, after_key="b")) == [
            ("bb", 1, False), ("c", 2, False), ("d", 2, True)]

    def test_live_keys_lists_the_keys_not_deleted_of_one_entity(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.apply("item", [rec(f"k{n}") for n in range(1200)])
            tx.apply("location", [rec("x")])
            tx.delete("item", ["k7", "k8"])
        keys = list(store.live_keys("item"))
        assert len(keys) == 1198 and set(keys) == {f"k{n}" for n in range(1200)} - {"k7", "k8"}
        assert list(store.live_keys("nothing")) == []

    def test_input_hashes_follow_the_state_they_were_accepted_with(self, store: Store) -> None:
        def inp(key: str, digest: str | None, **fields: object) -> IncomingRecord:
            return IncomingRecord(key, rec(key, **fields).payload, input_hash=digest)

        with store.transaction() as tx:
            tx.apply("item", [inp("a", "ha"), inp("b", "hb"), inp("c", None), inp("d", "hd")])
            tx.apply("location", [inp("x", "hx")])
        assert store.live_inputs("item") == {"a": "ha", "b": "hb", "c": None, "d": "hd"}
        with store.transaction() as tx:
            result = tx.apply("item", [inp("a", "ha2"), inp("b", None), inp("d", None, n=2)])
            tx.delete("item", ["c"])
        assert (result.unchanged, result.updated) == (2, 1)
        # a: unchanged record, new input kept; b: unchanged without an input, the old one still holds;
        # d: changed by a write that keeps no input hash, so none is kept
        assert store.live_inputs("item") == {"a": "ha2", "b": "hb", "d": None}
        with store.transaction() as tx:
            tx.delete("item", ["a"])
        assert store.live_inputs("item") == {"b": "hb", "d": None}
        assert store.live_inputs("location") == {"x": "hx"}
        assert store.live_inputs("nothing") == {}

    def test_a_lease_has_one_holder_until_it_expires_or_is_released(self, make_store: MakeStore) -> None:
        one, two = make_store(), make_store()  # two processes sharing the store
        assert one.acquire_lease("flow:items-in", "a", 30)
        assert not two.acquire_lease("flow:items-in", "b", 30)
        assert one.acquire_lease("flow:items-in", "a", 30)  # renewing
        assert two.acquire_lease("flow:other", "b", 30)  # leases are per name
        two.release_lease("flow:items-in", "b")  # not its lease: nothing happens
        assert not two.acquire_lease("flow:items-in", "b", 30)
        one.release_lease("flow:items-in", "a")
        assert two.acquire_lease("flow:items-in", "b", 1.0)
        assert not one.acquire_lease("flow:items-in", "a", 30)
        deadline = time.monotonic() + 10  # b died without releasing: its lease runs out, and a takes it
        while not one.acquire_lease("flow:items-in", "a", 30):
            assert time.monotonic() < deadline, "an expired lease was never given to another holder"
            time.sleep(0.05)
        assert not two.acquire_lease("flow:items-in", "b", 30)

    def test_a_lease_of_a_holder_known_gone_can_be_replaced(self, store: Store) -> None:
        assert store.lease_holder("flow:x") is None
        assert store.acquire_lease("flow:x", "dead", 60)
        assert store.lease_holder("flow:x") == "dead"
        assert not store.acquire_lease("flow:x", "new", 60, replacing="someone-else")
        assert store.acquire_lease("flow:x", "new", 60, replacing="dead")
        assert store.lease_holder("flow:x") == "new"
        store.release_lease("flow:x", "new")
        assert store.lease_holder("flow:x") is None

    def test_concurrent_lease_takers_get_it_once(self, make_store: MakeStore) -> None:
        stores = [make_store() for _ in range(4)]
        won: list[str] = []
        barrier = threading.Barrier(len(stores))

        def take(n: int) -> None:
            barrier.wait()
            if stores[n].acquire_lease("flow:race", f"h{n}", 30):
                won.append(f"h{n}")

        threads = [threading.Thread(target=take, args=(n,)) for n in range(len(stores))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(won) == 1, won

    def test_leases_lists_the_unexpired_holders_by_prefix(self, store: Store) -> None:
        assert store.acquire_lease("job", "a", 30)
        assert not store.acquire_lease("job", "b", 30)
        assert store.acquire_lease("job", "a", 30)  # renewal
        assert store.leases() == {"job": "a"}
        store.release_lease("job", "b")  # not b's to release
        assert store.leases("jo") == {"job": "a"}
        store.release_lease("job", "a")
        assert store.leases() == {}
        assert store.acquire_lease("job", "b", 1.0)
        assert store.leases("other") == {}
        assert store.leases() == {"job": "b"}
        deadline = time.monotonic() + 10
        while store.leases():  # until it expires
            assert time.monotonic() < deadline, "a lease never expired"
            time.sleep(0.05)
        assert store.acquire_lease("job", "a", 30)
        assert store.leases("j") == {"job": "a"}


def _quarantined_at_revision(make_store: MakeStore, store_url: str, revision: str) -> None:
    """The store's database as a release at migration ``revision`` left it, holding one quarantine entry (A, from
    x.csv:2, reason ``bad @ $``, created 2025-01-02 03:04:05): an empty database migrated only that far."""
    _at_revision(make_store, store_url, revision, [
        "INSERT INTO sf_quarantine (flow, system, entity, record_key, location, reasons, payload, status, "
        "created_at, updated_at) VALUES ('in', 'erp', 'item', 'A', 'x.csv:2', '[\"bad @ $\"]', '{}', "
        "'open', :at, :at)"])


def _at_revision(make_store: MakeStore, store_url: str, revision: str, statements: list[str]) -> None:
    """An empty database migrated only as far as ``revision``, then ``statements`` run on it (``:at`` is the time
    2025-01-02 03:04:05)."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from syncfabric.store.sql import MIGRATIONS

    make_store(migrate=False).close()
    engine = create_engine(_driver_url(store_url))
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            for statement in statements:
                conn.execute(text(statement), {"at": dt.datetime(2025, 1, 2, 3, 4, 5)})
    finally:
        engine.dispose()


def _driver_url(url: str) -> str:
    from syncfabric.store.postgres import driver_url

    return driver_url(url) if url.startswith("postgres") else url
