"""The delivery log on both store backends, and what outbound delivery writes to it in each mode."""

from __future__ import annotations

import datetime as dt
import math
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest
import sqlalchemy

from syncfabric.connectors.base import OutboundRecord
from syncfabric.flows.outbound import deliver_next, run_outbound
from syncfabric.flows.result import FlowResult
from syncfabric.flows.retry import RetryPolicy
from syncfabric.observe import histogram
from syncfabric.observe.clock import use_clock
from syncfabric.observe.delivery_log import deliveries, summarize
from syncfabric.observe.freshness import WINDOW, change_latencies, freshness
from syncfabric.observe.histogram import LATENCY_BUCKETS
from syncfabric.observe.metrics import StoreCollector
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
    assert stored.changes == ((T0, ("E1",)), (T0 + 3 * minute, ("E2",)))
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
        assert p1.newest_source_time == T0 and p1.changes == ((T0, ("E1",)),) and p1.records == 1
        assert p2.confirmed_at == confirmed and p2.records == 1
        assert p2.changes == ((T0 + dt.timedelta(minutes=3), ("E2",)),)
        assert item.newest_source_time == recorded and item.changes == () and item.newest_changed_at is None
        [letters] = dead_letters_by_reason(store)
        assert (letters.flow, letters.reason, letters.count) == ("out", "work center WC1 is unknown at P2", 1)
        stats = {s.group: s for s in freshness(store, entity="machine_downtime",
                                               now=confirmed + dt.timedelta(minutes=1))}
        assert stats["P2"].records == 1 and stats["P2"].age_seconds == 3 * 60 and stats["P2"].latency_max == 2 * 60


class Answering(RecordingTarget):
    """Answers a write with the keys ``answer`` makes of those sent, as accepted (reordered, some left out, one it
    was not sent)."""

    def __init__(self, answer: Any) -> None:
        super().__init__()
        self.answer = answer

    def write(self, entity: str, records: Any) -> Any:
        outcome = super().write(entity, records)
        outcome.accepted = self.answer(outcome.accepted)
        return outcome


@pytest.mark.parametrize(("answer", "logged"), [
    (lambda keys: keys, ["E1", "E2", "E3"]),
    (lambda keys: keys[::-1], ["E3", "E2", "E1"]),
    (lambda keys: [*keys[1:], "NOT-SENT"], ["E2", "E3"]),
])
def test_the_log_holds_the_records_the_target_says_it_took(tmp_path: Path, answer: Any, logged: list[str]) -> None:
    with open_store(f"sqlite:///{tmp_path}/s.db") as store:
        for minute, event in enumerate(["E1", "E2", "E3"]):
            put(store, "machine_downtime", event, downtime(event, "P1", T0 + dt.timedelta(minutes=minute)))
        result = FlowResult(flow="out", direction="outbound")
        deliver_next(store, "out", Answering(answer), ["machine_downtime"], batch_size=100, retry=RetryPolicy(),
                     result=result)
        [row] = store.deliveries(since=T0 - dt.timedelta(days=1), flow="out")
        assert row.records == len(logged) and result.records_out == len(answer(["E1", "E2", "E3"]))
        assert [key for _, keys in row.changes for key in keys] == logged


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
        assert [(d.records, d.changes) for d in logged] == [(2, ((T0 + hour, ("A|P1|",)),)),
                                                            (1, ((T0 + hour, ("A|P1|",)),))]
        assert [d.latency_max for d in logged] == [0.0, 0.0]  # what the read time alone says
        assert change_latencies(store, flow="out", entity="inventory_balance", since=T0, until=night + hour) == [
            ("P1", 16 * 3600.0)]
        assert change_latencies(store, flow="out", entity="inventory_balance", since=night + hour,
                                until=night + hour) == []


def test_source_time_and_group_are_read_from_the_fields_the_entity_has() -> None:
    from syncfabric.flows.outbound import Pending
    from syncfabric.observe.delivery_log import fields_of

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
    assert rows[2].changes == ((T0, ("X",)),) and rows[1].changes == ()


# -- the batch rows answer what the per-record rows did --------------------------------------------------------------

RESOLUTION = 10 ** (1 / 20)  # a histogram percentile is at most this factor above the exact one (never below)
Record = tuple[str, str, int, dt.datetime, dt.datetime, dt.datetime | None]
"""(key, group, seq, source time, confirmed at, change time): what the delivery log used to keep per record."""


def spread(seed: int) -> list[Record]:
    """Records of four batches (confirmed an hour apart, the first outside the hour-long latency window), of two
    plants, with latencies from none to days (some on a Prometheus bound, some the same); the last batch sends 20
    changes of the third again (their change times already confirmed once)."""
    rng = random.Random(seed)
    records: list[Record] = []
    seq = 0
    for n in range(3):
        confirmed = T0 + dt.timedelta(hours=n)
        for i in range(300):
            seq += 1
            seconds = rng.choice([0.0, 60.0, 300.0, rng.uniform(0, 2), rng.uniform(0, 600), rng.expovariate(1 / 900),
                                  rng.uniform(3600, 3 * 86400)])
            source = confirmed - dt.timedelta(microseconds=round(seconds * 1e6))
            records.append((f"K{n}-{i}", f"P{i % 2}", seq, source, confirmed, source))
    again = T0 + dt.timedelta(hours=3)
    records += [(key, group, seq + i, source, again, changed)
                for i, (key, group, _, source, _, changed) in enumerate(records[-20:], start=1)]
    return records


def latency_of(record: Record) -> float:
    return max(0.0, (record[4] - record[3]).total_seconds())


def log(records: list[Record]) -> list[DeliveryBatch]:
    """The delivery log outbound delivery writes for ``records``, batch by batch, through the same function."""
    from syncfabric.flows.outbound import Pending

    rows: list[DeliveryBatch] = []
    for confirmed in sorted({r[4] for r in records}):
        rows += deliveries("out", "planning", [
            ("machine_downtime", Pending("machine_downtime", OutboundRecord(key, 1, downtime(key, group, source)),
                                         seq, source))
            for key, group, seq, source, at, _ in records if at == confirmed], confirmed_at=confirmed)
    return rows


def exact_percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


def assert_same_answers(store: Store, records: list[Record]) -> None:
    """Freshness, latency, change latency and the Prometheus histogram from ``store`` are what ``records``, kept one
    by one, give: exactly, but for percentiles, to the histogram's resolution."""
    now = T0 + dt.timedelta(hours=3, minutes=30)
    stats = {s.group: s for s in freshness(store, entity="machine_downtime", now=now)}
    assert set(stats) == {"P0", "P1"}
    for group, stat in stats.items():
        mine = [r for r in records if r[1] == group]
        window = [latency_of(r) for r in mine if now - WINDOW <= r[4] <= now]
        newest = max(r[3] for r in mine)
        assert stat.records == len(mine) and stat.window_records == len(window)
        assert stat.newest_source_time == newest and stat.age_seconds == (now - newest).total_seconds()
        assert stat.last_confirmed_at == max(r[4] for r in mine)
        assert stat.latency_max == max(window)
        for share, got in ((0.5, stat.latency_p50), (0.95, stat.latency_p95)):
            exact = exact_percentile(window, share)
            assert got is not None and exact <= got <= exact * RESOLUTION, (group, share, exact, got)
            assert got == min(histogram.upper_edge(histogram.bucket(exact)), max(window))

    first: dict[tuple[str, dt.datetime], tuple[str, dt.datetime]] = {}
    for key, group, _, _, at, changed in sorted(records, key=lambda r: r[4]):
        if changed is not None:
            first.setdefault((key, changed), (group, at))
    since = T0 + dt.timedelta(minutes=30)
    expected = sorted((group, max(0.0, (at - changed).total_seconds()))
                      for (_, changed), (group, at) in first.items() if at >= since)
    assert sorted(change_latencies(store, flow="out", entity="machine_downtime", since=since, until=now)) == expected

    family = StoreCollector(None, store)._latency(now)  # type: ignore[arg-type]
    samples = {s.labels["le"]: s.value for s in family.samples
               if s.name.endswith("_bucket") and s.labels["flow"] == "out"}
    values = [latency_of(r) for r in records]
    assert samples == {**{str(bound): float(sum(v <= bound for v in values)) for bound in LATENCY_BUCKETS},
                       "+Inf": float(len(values))}
    [total] = [s.value for s in family.samples if s.name.endswith("_sum") and s.labels["flow"] == "out"]
    assert total == pytest.approx(sum(values), rel=1e-12)


def test_batch_rows_give_the_per_record_answers(any_store: Store) -> None:
    records = spread(seed=5)
    rows = log(records)
    assert len(rows) == 4 * 2 and sum(r.records for r in rows) == len(records)
    with any_store.transaction() as tx:
        tx.add_deliveries(rows)
    assert_same_answers(any_store, records)


def test_histogram_percentiles_are_within_resolution_and_never_below() -> None:
    rng = random.Random(11)
    for _ in range(50):
        values = [rng.choice([0.0, rng.uniform(0, 1e-3), rng.lognormvariate(3, 3), 2e6]) for _ in range(97)]
        h = histogram.Histogram()
        for value in values:
            h.add_value(value)
        assert h.records == len(values) and h.maximum == max(values)
        for share in (0.01, 0.5, 0.9, 0.95, 0.99, 1.0):
            exact = exact_percentile(values, share)
            got = h.percentile(share)
            assert got is not None and exact <= got <= max(exact * RESOLUTION, 1e-3), (share, exact, got)
        for bound in LATENCY_BUCKETS:
            assert h.at_most(bound) == sum(v <= bound for v in values)
    assert histogram.Histogram().percentile(0.5) is None


def test_migration_turns_per_record_rows_into_batch_rows(db_url: str) -> None:
    """A database at 0013 with per-record delivery-log rows: migrated, its store answers what the rows did."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine
    from sqlalchemy import table as sql_table

    from syncfabric.store.sql import MIGRATIONS
    from syncfabric.store.tables import UtcDateTime

    records = spread(seed=7)
    # another flow's row, of an entity the model does not know, without a change time, converts too
    extra = ("X", "", 10_000, T0 - dt.timedelta(days=1), T0 - dt.timedelta(days=1), None)
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, "0013")
            old = sql_table("sf_delivery", *(sqlalchemy.column(name) for name in (
                "flow", "system", "entity", "record_key", "grp", "seq")),
                sqlalchemy.column("source_time", UtcDateTime), sqlalchemy.column("confirmed_at", UtcDateTime),
                sqlalchemy.column("changed_at", UtcDateTime))
            conn.execute(old.insert(), [
                {"flow": "out", "system": "planning", "entity": "machine_downtime", "record_key": key, "grp": group,
                 "seq": seq, "source_time": source, "confirmed_at": at, "changed_at": changed}
                for key, group, seq, source, at, changed in records]
                + [{"flow": "elsewhere", "system": "planning", "entity": "thing", "record_key": extra[0], "grp": "",
                    "seq": extra[2], "source_time": extra[3], "confirmed_at": extra[4], "changed_at": None}])
    finally:
        engine.dispose()
    with open_store(db_url) as store:
        rows = store.deliveries(since=T0 - dt.timedelta(days=2), flow="out")
        assert len(rows) == 4 * 2 and sum(r.records for r in rows) == len(records)
        assert sorted(rows, key=lambda r: (r.confirmed_at, r.group)) == sorted(
            log(records), key=lambda r: (r.confirmed_at, r.group))
        [thing] = store.delivery_groups(entity="thing")
        assert (thing.records, thing.newest_source_time, thing.group) == (1, extra[3], "")
        assert_same_answers(store, records)


# -- the rows worked out a column at a time are those of the definitions, record by record --------------------------


def one_by_one(confirmed: list[tuple[str, Any]], at: dt.datetime) -> list[DeliveryBatch]:
    """The delivery-log rows the module's definitions give, worked out record by record: the first of the entity's
    fields holding a time (a datetime, or a text that parses as one), the first holding a non-empty text."""
    from syncfabric.observe.delivery_log import fields_of

    def first_time(payload: dict[str, Any] | None, names: tuple[str, ...]) -> dt.datetime | None:
        for name in names:
            value = (payload or {}).get(name)
            if isinstance(value, dt.datetime):
                return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            if isinstance(value, str):
                try:
                    parsed = dt.datetime.fromisoformat(value)
                except ValueError:
                    continue
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        return None

    by_group: dict[tuple[str, str], list[tuple[str, int, dt.datetime, dt.datetime | None]]] = {}
    for entity, pending in confirmed:
        times, changes, groups = fields_of(entity)
        payload = pending.record.payload
        source = first_time(payload, times) or pending.recorded_at or at
        group = next((v for v in ((payload or {}).get(name) for name in groups) if isinstance(v, str) and v), "")
        by_group.setdefault((entity, group), []).append(
            (pending.record.key, pending.seq, source, first_time(payload, changes)))
    return [summarize("out", "planning", entity, group, at, records) for (entity, group), records in by_group.items()]


def mixed_batch(seed: int) -> list[tuple[str, Any]]:
    """Confirmed records of events, balances, items and an entity the model does not know, in runs and interleaved:
    shared and distinct time texts, texts that are no time, datetimes with and without a zone, fields missing or
    empty, deletions, several groups in one run."""
    from syncfabric.flows.outbound import Pending

    rng = random.Random(seed)
    texts = ["2026-11-02T08:00:00+00:00", "2026-11-02T08:00:00Z", "2026-11-02T09:30:00", "not a time", "", 7,
             "2026-11-02T07:59:59.500000+02:00", None]
    times = [*texts, T0 - dt.timedelta(minutes=3), dt.datetime(2026, 11, 2, 7, 0)]
    places = ["P1", "P2", "", None, 3]
    confirmed: list[tuple[str, Any]] = []
    seq = 0
    for _ in range(rng.randint(1, 6)):
        entity = rng.choice(["machine_downtime", "shipment_milestone", "inventory_balance", "item",
                             "not_in_the_model"])
        for _ in range(rng.randint(1, 40)):
            seq += 1
            fields = {"as_of": rng.choice(times), "occurred_at": rng.choice(times), "changed_at": rng.choice(times),
                      "started_at": rng.choice(times), "location_id": rng.choice(places),
                      "to_location_id": rng.choice(places), "shipment_id": "S"}
            payload = None if rng.random() < 0.1 else {name: value for name, value in fields.items()
                                                       if rng.random() < 0.8}
            recorded = rng.choice([None, T0 - dt.timedelta(hours=1)])
            confirmed.append((entity, Pending(entity, OutboundRecord(f"K{seq % 25}", seq, payload), seq, recorded)))
    return confirmed


@pytest.mark.parametrize("seed", range(40))
def test_rows_worked_out_by_column_are_those_record_by_record(seed: int) -> None:
    confirmed = mixed_batch(seed)
    at = T0 + dt.timedelta(minutes=5)
    assert deliveries("out", "planning", confirmed, confirmed_at=at) == one_by_one(confirmed, at)


def test_a_run_of_one_shared_time_keeps_every_key_under_it() -> None:
    from syncfabric.flows.outbound import Pending

    event = {"shipment_id": "S", "milestone": "departed", "occurred_at": "2026-11-02T08:00:00+00:00"}
    confirmed = [("shipment_milestone", Pending("shipment_milestone", OutboundRecord(f"K{n}", 1, event), n, None))
                 for n in range(1, 4)]
    [row_] = deliveries("out", "planning", confirmed, confirmed_at=T0 + dt.timedelta(seconds=2))
    assert row_.changes == ((T0, ("K1", "K2", "K3")),) and row_.newest_changed_at == T0
    assert (row_.records, row_.first_seq, row_.last_seq, row_.latency_sum) == (3, 1, 3, 6.0)
