"""Automatic fallback: the target goes down while changes keep coming; the flow falls back to batch catch-up and
returns to streaming when the target is back, every change applied once, in per-key order. Real HTTP, real store."""

from __future__ import annotations

import threading
import time

import httpx

from syncfabric.flows.fallback import FallbackPolicy, Health
from syncfabric.flows.reconcile import check_target
from syncfabric.flows.retry import RetryPolicy
from syncfabric.flows.stream import FALLBACK, STREAMING, StreamConsumer
from syncfabric.store import Store
from tests.flows.delivery_support import FLOW, connector, journal, put_items, running, wait_for

KEYS = [f"K{n}" for n in range(6)]
RETRY = RetryPolicy(max_attempts=3, base_delay=0.02, max_delay=0.1, jitter=0.2)
POLICY = FallbackPolicy(outage_seconds=0.4, catch_up_interval=0.25)


def test_an_outage_makes_the_flow_fall_back_and_return_with_every_change_once_in_order(
    store: Store, base_url: str, control: httpx.Client
) -> None:
    consumer = StreamConsumer(store, FLOW, connector(base_url, timeout_seconds=2), entities=["item"],
                              batch_size=4, retry=RETRY, poll_interval=0.02, fallback=POLICY)
    stop_plant = threading.Event()

    def plant() -> None:  # keeps publishing through the outage, one change at a time
        round_ = 0
        while not stop_plant.is_set():
            round_ += 1
            put_items(store, *((key, f"{key}-{round_}") for key in KEYS[round_ % 3::3]))
            time.sleep(0.03)

    with running(consumer):
        put_items(store, *((key, f"{key}-0") for key in KEYS))
        wait_for(lambda: store.checkpoint(FLOW) == str(store.head()), what="the first changes")
        producer = threading.Thread(target=plant, daemon=True)
        producer.start()
        control.post("/faults", json={"outage": True}).raise_for_status()
        wait_for(lambda: consumer.stats.mode == FALLBACK, what="the fallback")
        injected_at_fallback = control.get("/faults").json()["injected"]
        time.sleep(0.8)  # in fallback the target is asked once per catch-up interval, not hammered
        injected_in_fallback = control.get("/faults").json()["injected"] - injected_at_fallback
        assert store.checkpoint(FLOW) != str(store.head())  # changes queue while the target is down
        control.post("/faults", json={"outage": False}).raise_for_status()
        wait_for(lambda: consumer.stats.mode == STREAMING, what="the return to streaming")
        stop_plant.set()
        producer.join()
        wait_for(lambda: store.checkpoint(FLOW) == str(store.head()), what="the last changes")

    assert injected_in_fallback <= 0.8 / POLICY.catch_up_interval + 1
    applied: dict[str, list[int]] = {}
    for entry in journal(control):
        assert entry["effect"] != "stale", f"an older version reached the target after a newer one: {entry}"
        if entry["effect"] != "duplicate":
            applied.setdefault(entry["key"], []).append(entry["version"])
    for key in KEYS:
        row = store.get("item", key)
        assert row is not None and row.version > 3
        assert applied[key] == sorted(set(applied[key])), f"{key}: {applied[key]}"  # once each, in order
        assert applied[key][-1] == row.version  # the newest arrived
    assert consumer.stats.retries > 0 and consumer.stats.failures > 0

    fallback, recovered = sorted((a for a in store.alerts(FLOW) if a.kind in ("fallback", "recovered")),
                                 key=lambda a: a.id)
    assert fallback.kind == "fallback" and "without a success" in fallback.message
    assert recovered.kind == "recovered" and recovered.detail["caught_up"] > 0
    assert all(check["ok"] for check in recovered.detail["reconciliation"])  # the target holds what the store does
    modes = [(run.detail["mode"], str(run.detail["ended_by"]).split(":")[0]) for run in reversed(store.runs(FLOW))]
    assert modes == [("stream", "fallback"), ("catch-up", "recovered"), ("stream", "stopped")]
    checks = check_target(store, connector(base_url), ["item"])
    assert checks is not None and checks[0].ok and checks[0].store_hash == checks[0].target_hash


def test_a_flow_left_in_fallback_resumes_in_fallback_and_recovers(store: Store, base_url: str,
                                                                  control: httpx.Client) -> None:
    store.raise_alert(FLOW, "fallback", "target down")
    put_items(store, ("A", "a1"))
    consumer = StreamConsumer(store, FLOW, connector(base_url), entities=["item"], retry=RETRY,
                              poll_interval=0.02, fallback=POLICY)

    stats = consumer.run(until_idle=True)

    assert stats.mode == STREAMING and stats.changes == 1 and store.alerts(FLOW, limit=1)[0].kind == "recovered"


def test_reconciliation_names_what_the_target_is_missing_or_has_too_many(store: Store, base_url: str,
                                                                         control: httpx.Client) -> None:
    put_items(store, ("A", "a1"), ("B", "b1"))
    StreamConsumer(store, FLOW, connector(base_url), entities=["item"], poll_interval=0.01).run(until_idle=True)
    put_items(store, ("A", "a2"), ("C", "c1"))  # recorded, not delivered
    httpx.put(f"{base_url}/api/input/item/", json=[{"name": "Z", "uom": "EA", "_version": 1, "_stream": "item"}])

    [check] = check_target(store, connector(base_url), ["item"]) or []

    assert (check.store_count, check.target_count) == (3, 3)
    assert (check.missing, check.extra, check.behind) == (1, 1, 1) and not check.ok
    assert sorted(check.sample) == ["behind A (v1 < v2)", "extra Z", "missing C"]
    assert check.to_resend == ["A", "C"]
    [upto] = check_target(store, connector(base_url), ["item"], upto=int(store.checkpoint(FLOW) or 0)) or []
    assert (upto.missing, upto.extra, upto.behind) == (0, 1, 0)  # A and C are on their way, not missing


def test_health_verdicts_follow_the_policy() -> None:
    health = Health(FallbackPolicy(outage_seconds=10, error_rate=0.5, lag_seconds=30, window=4))
    for ok, at in ((True, 0), (False, 1), (True, 2), (False, 3)):
        health.record(ok, at)
    assert health.verdict(lag_seconds=0, now=3) is None  # 50% is not above 50%
    health.record(False, 4)
    assert "75% of the last 4 batches failed" in (health.verdict(lag_seconds=0, now=4) or "")
    outage = Health(FallbackPolicy(outage_seconds=10))
    outage.record(False, 100)
    outage.record(False, 105)
    assert outage.verdict(0, now=109) is None
    assert "failing for 10.0 s" in (outage.verdict(0, now=110) or "")
    outage.record(True, 111)
    assert outage.verdict(0, now=200) is None
    assert "31.0 s old" in (Health(FallbackPolicy(outage_seconds=None, lag_seconds=30)).verdict(31, now=0) or "")


def test_a_target_that_lost_data_during_the_outage_is_repaired_by_the_reconciliation(
    store: Store, base_url: str, control: httpx.Client
) -> None:
    consumer = StreamConsumer(store, FLOW, connector(base_url, timeout_seconds=2), entities=["item"],
                              retry=RETRY, poll_interval=0.02, fallback=POLICY)
    with running(consumer):
        put_items(store, ("A", "a1"), ("B", "b1"), ("C", "c1"))
        wait_for(lambda: store.checkpoint(FLOW) == "3", what="the first changes")
        control.post("/faults", json={"outage": True}).raise_for_status()
        put_items(store, ("B", "b2"))
        wait_for(lambda: consumer.stats.mode == FALLBACK, what="the fallback")
        control.post("/reset").raise_for_status()  # restarted empty: lost A, B and C, and the outage ended
        wait_for(lambda: consumer.stats.mode == STREAMING, what="the return to streaming")

    [check] = check_target(store, connector(base_url), ["item"]) or []
    assert check.ok and check.target_count == 3  # B came back through catch-up, A and C through the repair
    [alert] = [a for a in store.alerts(FLOW) if a.kind == "reconciliation"]
    assert "2 missing" in alert.message and alert.detail["resent"] == 2
