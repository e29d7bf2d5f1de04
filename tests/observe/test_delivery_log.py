"""The delivery log on both store backends, and what outbound delivery writes to it in each mode."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec
import pytest

from syncfabric.connectors.base import OutboundRecord
from syncfabric.flows.outbound import deliver_next, run_outbound
from syncfabric.flows.result import FlowResult
from syncfabric.flows.retry import RetryPolicy
from syncfabric.observe.clock import use_clock
from syncfabric.observe.delivery_log import summarize
from syncfabric.observe.freshness import change_latencies, freshness
from syncfabric.observe.throughput import dead_letters_by_reason
from syncfabric.store import DeliveryBatch, IncomingRecord, Lineage, Store, open_store
from tests.fixtures import RecordingTarget

T0 = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)


def row(key: str, group: str, source: dt.datetime, confirmed: dt.datetime, entity: str = "inventory_balance",
        changed: dt.datetime | None = None, seq: int = 1) -> DeliveryBatch:
    """The delivery-log row of one record confirmed alone."""
    return summarize("out", "planning", entity, group, confirmed, [(key, seq, source, changed)])


def test_delivery_log_round_trip_groups_and_window(any_store: Store) -> None:
    minute = dt.timedelta(minutes=1)
    with any_store.transaction() as tx:
        tx.add_deliveries([row("A", "P1", T0, T0 + minute), row("B", "P1", T0 + 2 * minute, T0 + 5 * minute),
                           row("C", "P2", T0 - 60 * minute, T0 + minute), row("I", "", T0, T0, entity="item")])
    with pytest.raises(RuntimeError), any_store.transaction() as tx:
        tx.add_deliveries([row("D", "P3", T0, T0)])
        raise RuntimeError("rolled back with its batch")
    groups = {(g.entity, g.group): g for g in any_store.delivery_groups(flow="out")}
    assert set(groups) == {("inventory_balance", "P1"), ("inventory_balance", "P2"), ("item", "")}
    p1 = groups[("inventory_balance", "P1")]
    assert p1.records == 2 and p1.newest_source_time == T0 + 2 * minute and p1.last_confirmed_at == T0 + 5 * minute
    assert p1.newest_source_time.tzinfo is not None
    assert [g.group for g in any_store.delivery_groups(entity="item")] == [""]
    window = any_store.deliveries(since=T0 + minute, until=T0 + 4 * minute, flow="out")
    assert sorted(d.group for d in window) == ["P1", "P2"]
    assert window[0].newest_source_time.tzinfo is not None and window[0].confirmed_at.tzinfo is not None

    stats = {s.group: s for s in freshness(any_store, entity="inventory_balance", now=T0 + 10 * minute)}
    assert stats["P1"].age_seconds == 8 * 60 and stats["P1"].latency_max == 3 * 60
    assert stats["P2"].age_seconds == 70 * 60 and stats["P2"].latency_p50 == 61 * 60


def test_a_batch_row_keeps_counts_sequences_newest_times_and_changes(any_store: Store) -> None:
    minute = dt.timedelta(minutes=1)
    confirmed = T0 + 10 * minute
    batch = summarize("out", "planning", "machine_downtime", "P1", confirmed, [
        ("E1", 7, T0, T0), ("E2", 5, T0 + 3 * minute, T0 + 3 * minute), ("E3", 9, T0 + minute, None)])
    with any_store.transaction() as tx:
        tx.add_deliveries([batch])
    [stored] = any_store.deliveries(since=T0, flow="out")
    assert stored == batch
    assert (stored.records, stored.first_seq, stored.last_seq) == (3, 5, 9)
    assert stored.newest_source_time == T0 + 3 * minute and stored.newest_changed_at == T0 + 3 * minute
    assert stored.latency_max == 600.0 and stored.latency_sum == 600.0 + 420.0 + 540.0
    assert stored.changes == (("E1", T0), ("E2", T0 + 3 * minute))
    assert sum(n for _, n in stored.latency) == 3


def test_prune_keeps_the_newest_of_each_group(any_store: Store) -> None:
    hour = dt.timedelta(hours=1)
    with any_store.transaction() as tx:
        tx.add_deliveries([row("A", "P1", T0, T0), row("B", "P1", T0 + hour, T0 + hour),
                           row("C", "P1", T0 + 3 * hour, T0 + 3 * hour), row("D", "P2", T0, T0)])
    assert any_store.prune_deliveries(T0 + 2 * hour) == 2  # A's and B's rows; D is P2's newest, C is recent
    left = any_store.deliveries(since=T0 - hour, flow="out")
    assert sorted((d.group, d.newest_source_time) for d in left) == [("P1", T0 + 3 * hour), ("P2", T0)]
    groups = {g.group: g.newest_source_time for g in any_store.delivery_groups()}
    assert groups == {"P1": T0 + 3 * hour, "P2": T0}
    assert any_store.prune_deliveries(T0 + 10 * hour) == 0


def put(store: Store, entity: str, key: str, payload: dict) -> None:
    with store.transaction() as tx:
        tx.apply(entity, [IncomingRecord(key, msgspec.json.encode(payload), Lineage("mes"))])


def downtime(event_id: str, site: str, occurred: dt.datetime) -> dict:
    return {"event_id": event_id, "occurred_at": occurred.isoformat().replace("+00:00", "Z"), "location_id": site,
            "work_center_id": "WC1", "started_at": occurred.isoformat(), "reason_code": "JAM"}


def test_deliver_next_logs_what_the_target_confirmed_not_what_it_rejected(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/s.db") as store:
        put(store, "machine_downtime", "E1", downtime("E1", "P1", T0))
        put(store, "machine_downtime", "E2", downtime("E2", "P2", T0 + dt.timedelta(minutes=3)))
        put(store, "machine_downtime", "E3", downtime("E3", "P2", T0 + dt.timedelta(minutes=4)))
        put(store, "item", "A", {"item_id": "A", "base_unit": "EA"})  # no time field: the store's record time
        recorded = store.get("item", "A").updated_at
        confirmed = T0 + dt.timedelta(minutes=5)
        with use_clock(lambda: confirmed):
            sent = deliver_next(store, "out", RecordingTarget(reject={"E3": "work center WC1 is unknown at P2"}),
                                ["machine_downtime", "item"], batch_size=100, retry=RetryPolicy(),
                                result=FlowResult(flow="out", direction="outbound"))
        assert sent == 4
        logged = {(d.entity, d.group): d for d in store.deliveries(since=T0 - dt.timedelta(days=1), flow="out")}
        assert set(logged) == {("machine_downtime", "P1"), ("machine_downtime", "P2"), ("item", "")}
        p1, p2, item = logged[("machine_downtime", "P1")], logged[("machine_downtime", "P2")], logged[("item", "")]
        assert p1.newest_source_time == T0 and p1.changes == (("E1", T0),) and p1.records == 1
        assert p2.confirmed_at == confirmed and p2.records == 1
        assert p2.changes == (("E2", T0 + dt.timedelta(minutes=3)),)
        assert item.newest_source_time == recorded and item.changes == () and item.newest_changed_at is None
        [letters] = dead_letters_by_reason(store)
        assert (letters.flow, letters.reason, letters.count) == ("out", "work center WC1 is unknown at P2", 1)
        stats = {s.group: s for s in freshness(store, entity="machine_downtime",
                                               now=confirmed + dt.timedelta(minutes=1))}
        assert stats["P2"].records == 1 and stats["P2"].age_seconds == 3 * 60 and stats["P2"].latency_max == 2 * 60


@pytest.mark.parametrize("mode", ["full", "plan_cut"])
def test_full_and_plan_cut_deliveries_are_logged(tmp_path: Path, mode: str) -> None:
    with open_store(f"sqlite:///{tmp_path}/s.db") as store:
        for n in range(5):
            put(store, "machine_downtime", f"E{n}", downtime(f"E{n}", f"P{n % 2}", T0 + dt.timedelta(minutes=n)))
        with use_clock(lambda: T0 + dt.timedelta(minutes=10)):
            run_outbound(store, "out", RecordingTarget(), entities=["machine_downtime"], mode=mode, batch_size=2)
        groups = {g.group: g for g in store.delivery_groups(flow="out")}
        assert {k: g.records for k, g in groups.items()} == {"P0": 3, "P1": 2}
        assert groups["P0"].newest_source_time == T0 + dt.timedelta(minutes=4)


def balance(key: str, plant: str, on_hand: int, read: dt.datetime, changed: dt.datetime | None) -> dict:
    record = {"item_id": key, "location_id": plant, "lot": "", "on_hand": {"value": str(on_hand), "unit": "EA"},
              "as_of": read.isoformat()}
    return record if changed is None else {**record, "changed_at": changed.isoformat()}


def test_change_latency_runs_from_the_change_at_the_source_to_its_first_confirmation(tmp_path: Path) -> None:
    """A snapshot stamps every balance with its read time: delivered the next night, its delivery latency is
    seconds, but a balance that says when it changed has its change latency counted from then, once."""
    hour = dt.timedelta(hours=1)
    night = T0 + 17 * hour  # read and delivered the next night
    with open_store(f"sqlite:///{tmp_path}/s.db") as store:
        put(store, "inventory_balance", "A|P1|", balance("A", "P1", 5, night, changed=T0 + hour))
        put(store, "inventory_balance", "B|P1|", balance("B", "P1", 7, night, changed=None))  # read time only
        with use_clock(lambda: night):
            deliver_next(store, "out", RecordingTarget(), ["inventory_balance"], batch_size=100, retry=RetryPolicy(),
                         result=FlowResult(flow="out", direction="outbound"))
        # the next snapshot, an hour later: A again unchanged (same change time, new read time)
        put(store, "inventory_balance", "A|P1|", balance("A", "P1", 5, night + hour, changed=T0 + hour))
        with use_clock(lambda: night + hour):
            deliver_next(store, "out", RecordingTarget(), ["inventory_balance"], batch_size=100, retry=RetryPolicy(),
                         result=FlowResult(flow="out", direction="outbound"))
        logged = store.deliveries(since=T0, flow="out")
        assert [(d.records, d.changes) for d in logged] == [(2, (("A|P1|", T0 + hour),)), (1, (("A|P1|", T0 + hour),))]
        assert [d.latency_max for d in logged] == [0.0, 0.0]  # what the read time alone says
        assert change_latencies(store, flow="out", entity="inventory_balance", since=T0, until=night + hour) == [
            ("P1", 16 * 3600.0)]
        assert change_latencies(store, flow="out", entity="inventory_balance", since=night + hour,
                                until=night + hour) == []


def test_source_time_and_group_are_read_from_the_fields_the_entity_has() -> None:
    from syncfabric.flows.outbound import Pending
    from syncfabric.observe.delivery_log import deliveries, fields_of

    recorded, confirmed = T0 - dt.timedelta(hours=1), T0 + dt.timedelta(minutes=1)
    assert fields_of("item") == ((), (), ())
    assert fields_of("inventory_balance") == (("as_of",), ("changed_at",), ("location_id",))
    assert fields_of("not_in_the_model")[0][0] == "as_of"  # an entity the model does not know: every field tried
    item = {"item_id": "A", "as_of": "2026-11-02T08:00:00Z", "location_id": "P9"}  # not an item's fields
    balance = {"item_id": "A", "location_id": "P1", "as_of": "2026-11-02T08:00:00+00:00"}
    foreign = {"occurred_at": "2026-11-02T08:00:00", "to_location_id": "P2"}
    rows = deliveries("out", "planning", [
        ("item", Pending("item", OutboundRecord("A", 1, item), 1, recorded)),
        ("inventory_balance", Pending("inventory_balance", OutboundRecord("A|P1|", 1, balance), 2, recorded)),
        ("not_in_the_model", Pending("not_in_the_model", OutboundRecord("X", 1, foreign), 3, recorded)),
        ("inventory_balance", Pending("inventory_balance", OutboundRecord("B|P1|", 2, None), 4, None)),
    ], confirmed_at=confirmed)
    assert [(r.entity, r.group, r.records, r.newest_source_time, r.confirmed_at, r.first_seq) for r in rows] == [
        ("item", "", 1, recorded, confirmed, 1), ("inventory_balance", "P1", 1, T0, confirmed, 2),
        ("not_in_the_model", "P2", 1, T0, confirmed, 3), ("inventory_balance", "", 1, confirmed, confirmed, 4)]
    assert rows[2].changes == (("X", T0),) and rows[1].changes == ()
