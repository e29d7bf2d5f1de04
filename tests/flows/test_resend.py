"""Replay of the change log to an outbound flow's target, against the simulated planning platform over real HTTP."""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest

from syncfabric.errors import ConfigError
from syncfabric.flows.resend import Selection, plan_resend, resend
from syncfabric.flows.stream import StreamConsumer
from syncfabric.store import Store
from tests.flows.delivery_support import FLOW, connector, effective_versions, journal, put_items

ENTITIES = ["item"]


def deliver(store: Store, base_url: str) -> None:
    StreamConsumer(store, FLOW, connector(base_url), entities=ENTITIES, poll_interval=0.01).run(until_idle=True)


def test_a_target_that_lost_its_data_gets_the_newest_version_of_every_key_once(store: Store, base_url: str,
                                                                                control: httpx.Client) -> None:
    put_items(store, ("A", "a1"), ("B", "b1"), ("A", "a2"), ("C", "c1"))
    deliver(store, base_url)
    control.post("/reset").raise_for_status()  # the target lost everything

    plan = plan_resend(store, FLOW, ENTITIES, Selection(from_seq=1))
    assert [(c.key, c.version) for c in plan.changes] == [("B", 1), ("A", 2), ("C", 1)]
    assert (plan.matched, plan.pending, plan.checkpoint) == (4, 0, 4)
    result = resend(store, connector(base_url), plan, selection=Selection(from_seq=1))

    assert result.records_out == 3
    assert effective_versions(control) == {"A": [2], "B": [1], "C": [1]}
    assert store.checkpoint(FLOW) == "4"  # a replay does not move the flow
    [run] = store.runs(FLOW, limit=1)
    assert run.detail["replay"] == {"from_seq": 1} and run.detail["sent"] == 3

    resend(store, connector(base_url), plan_resend(store, FLOW, ENTITIES, Selection(from_seq=1)))  # again
    assert effective_versions(control) == {"A": [2], "B": [1], "C": [1]}  # idempotent: nothing applied twice
    assert [e["effect"] for e in journal(control)][-3:] == ["duplicate"] * 3


def test_selections_by_sequence_time_key_and_entity(store: Store, base_url: str, control: httpx.Client) -> None:
    put_items(store, ("A", "a1"), ("B", "b1"))
    time.sleep(0.01)
    middle = dt.datetime.now(dt.UTC)
    put_items(store, ("C", "c1"), ("A", "a2"))
    deliver(store, base_url)
    put_items(store, ("A", "a3"))  # not delivered yet: left to the flow

    def keys(selection: Selection) -> list[tuple[str, int]]:
        return [(c.key, c.version) for c in plan_resend(store, FLOW, ENTITIES, selection).changes]

    assert keys(Selection(from_seq=3)) == [("C", 1), ("A", 2)]
    assert keys(Selection(since=middle)) == [("C", 1), ("A", 2)]
    assert keys(Selection(key="A")) == [("A", 2)]
    assert keys(Selection(entity="item", from_seq=2)) == [("B", 1), ("C", 1), ("A", 2)]
    assert plan_resend(store, FLOW, ENTITIES, Selection(key="A")).pending == 1
    with pytest.raises(ConfigError, match="does not deliver entity 'location'"):
        plan_resend(store, FLOW, ENTITIES, Selection(entity="location"))


def test_keys_held_by_dead_letters_are_not_replayed_around_them(store: Store, base_url: str,
                                                                control: httpx.Client) -> None:
    control.post("/faults", json={"reject_keys": ["B"]}).raise_for_status()
    put_items(store, ("A", "a1"), ("B", "b1"))
    deliver(store, base_url)

    plan = plan_resend(store, FLOW, ENTITIES, Selection(from_seq=1))

    assert [c.key for c in plan.changes] == ["A"] and [c.key for c in plan.held] == ["B"]
