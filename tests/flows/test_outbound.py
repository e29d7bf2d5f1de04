"""Outbound flows from a real SQLite store to an in-test target that records every write."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from syncfabric.connectors.base import Capability, OutboundRecord, WriteOutcome
from syncfabric.errors import PermanentError, TransientError
from syncfabric.flows.outbound import deliver_next, dependency_order, run_outbound
from syncfabric.flows.result import FlowResult
from syncfabric.flows.retry import RetryPolicy
from syncfabric.model import ENTITIES
from syncfabric.store import IncomingRecord, Lineage, Store
from tests.fixtures import RecordingTarget

FLOW = "planning-out"
ALL = ["location", "item", "item_location", "inventory_balance"]


@dataclass(frozen=True)
class NoWait(RetryPolicy):
    """A retry policy that records the delays it is asked for and never waits."""

    asked: list[tuple[int, float | None]] = field(default_factory=list, compare=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        self.asked.append((attempt, retry_after))
        return 0.0


def put(store: Store, entity: str, key: str, **payload: Any) -> None:
    with store.transaction() as tx:
        tx.apply(entity, [IncomingRecord(key, msgspec.json.encode({"key": key, **payload}), Lineage("erp"))])


def remove(store: Store, entity: str, key: str) -> None:
    with store.transaction() as tx:
        tx.delete(entity, [key], Lineage("erp"))


def send(store: Store, target: RecordingTarget, *, mode: str = "changes", batch_size: int = 1000,
         retry: RetryPolicy | None = None) -> FlowResult:
    return run_outbound(store, FLOW, target, entities=ALL, mode=mode, batch_size=batch_size,
                        retry=retry or NoWait(max_attempts=3))


def seed_in_reverse_dependency_order(store: Store) -> None:
    put(store, "inventory_balance", "RM-1|P100|", on_hand=5)
    put(store, "item_location", "RM-1|P100", lead_time_days=3)
    put(store, "item", "RM-1", base_unit="EA")
    put(store, "location", "P100", kind="plant")


def test_changes_go_out_in_dependency_order(store: Store) -> None:
    seed_in_reverse_dependency_order(store)
    target = RecordingTarget()

    result = send(store, target)

    assert [entity for entity, _ in target.writes] == ["location", "item", "item_location", "inventory_balance"]
    positions = [list(ENTITIES).index(entity) for entity, _ in target.writes]
    assert positions == sorted(positions)
    assert result.records_out == 4 and result.checkpoint == str(store.head())
    assert store.checkpoint(FLOW) == str(store.head())


def test_dependency_order_follows_the_model_and_puts_unknown_entities_last() -> None:
    assert dependency_order(["inventory_balance", "x_custom", "item_location", "item", "location", "item"]) == [
        "location", "item", "item_location", "inventory_balance", "x_custom"]


def test_only_the_newest_change_of_a_key_in_a_batch_is_sent_and_deletions_have_no_payload(store: Store) -> None:
    put(store, "item", "A", base_unit="EA")
    put(store, "item", "B", base_unit="EA")
    put(store, "item", "A", base_unit="KG")
    remove(store, "item", "B")
    put(store, "item", "A", base_unit="G")
    target = RecordingTarget()

    result = send(store, target)

    assert target.sent() == [  # in the order of each key's newest change
        ("item", "B", 2, None),
        ("item", "A", 3, {"key": "A", "base_unit": "G"}),
    ]
    assert result.records_out == 2
    assert store.checkpoint(FLOW) == "5"


def test_changes_of_one_key_across_batches_arrive_in_the_order_recorded(store: Store) -> None:
    for unit in ("EA", "KG", "G"):
        put(store, "item", "A", base_unit=unit)
    remove(store, "item", "A")
    target = RecordingTarget()

    send(store, target, batch_size=1)

    assert [(version, payload) for _, _, version, payload in target.sent()] == [
        (1, {"key": "A", "base_unit": "EA"}), (2, {"key": "A", "base_unit": "KG"}),
        (3, {"key": "A", "base_unit": "G"}), (4, None)]


def test_only_changes_after_the_checkpoint_are_sent(store: Store) -> None:
    seed_in_reverse_dependency_order(store)
    send(store, RecordingTarget())
    put(store, "item", "RM-1", base_unit="KG")
    put(store, "sales_order", "SO-1", qty=1)  # not one of the flow's entities
    target = RecordingTarget()

    result = send(store, target)

    assert target.sent() == [("item", "RM-1", 2, {"key": "RM-1", "base_unit": "KG"})]
    assert result.checkpoint == str(store.head() - 1)  # the last change the flow covers
    again = RecordingTarget()
    assert send(store, again).records_out == 0 and again.writes == []


@pytest.mark.parametrize("failure", [
    PermanentError("422 unprocessable", system="planning"),
    TransientError("503 unavailable", system="planning"),
])
def test_the_checkpoint_does_not_move_when_the_target_fails(store: Store, failure: Exception) -> None:
    seed_in_reverse_dependency_order(store)
    target = RecordingTarget(failures=[failure] * 3)  # a transient failure three times exhausts the policy's attempts

    with pytest.raises(type(failure)):
        send(store, target, retry=NoWait(max_attempts=3))

    assert store.checkpoint(FLOW) is None
    assert target.attempts == (1 if isinstance(failure, PermanentError) else 3)

    again = RecordingTarget()
    result = send(store, again)

    assert [entity for entity, _ in again.writes] == ["location", "item", "item_location", "inventory_balance"]
    assert result.records_out == 4 and store.checkpoint(FLOW) == str(store.head())


def test_a_failed_batch_keeps_the_checkpoint_of_the_last_delivered_one(store: Store) -> None:
    for key in ("A", "B", "C", "D"):
        put(store, "item", key, base_unit="EA")
    delivered = 0

    class FailsOnThirdBatch(RecordingTarget):
        def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
            nonlocal delivered
            if delivered == 2:
                raise PermanentError("400 bad request", system="planning")
            delivered += 1
            return super().write(entity, records)

    with pytest.raises(PermanentError):
        send(store, FailsOnThirdBatch(), batch_size=1)

    assert store.checkpoint(FLOW) == "2"
    again = RecordingTarget()
    send(store, again, batch_size=1)
    assert [key for _, key, _, _ in again.sent()] == ["C", "D"]


def test_transient_failures_are_retried_honouring_retry_after(store: Store) -> None:
    put(store, "item", "A", base_unit="EA")
    target = RecordingTarget(failures=[TransientError("429 too many requests", retry_after=7.5, system="planning"),
                              TransientError("503 unavailable", system="planning")])
    policy = NoWait(max_attempts=5)

    result = send(store, target, retry=policy)

    assert policy.asked == [(1, 7.5), (2, None)]
    assert target.attempts == 3
    assert target.sent() == [("item", "A", 1, {"key": "A", "base_unit": "EA"})]
    assert result.records_out == 1 and store.checkpoint(FLOW) == "1"


def test_rejected_records_are_dead_lettered_with_reason_and_hold_back_only_their_own_key(store: Store) -> None:
    put(store, "item", "A", base_unit="EA")
    put(store, "item", "B", base_unit="BOX")
    put(store, "location", "P1", kind="plant")
    target = RecordingTarget(reject={"B": "unit BOX is not configured"})

    result = send(store, target)

    assert result.records_out == 2 and result.dead_lettered == 1 and result.quarantined == 0
    assert result.per_entity == {"location": 1, "item": 1}
    [letter] = store.dead_letters(flow=FLOW)
    assert (letter.system, letter.entity, letter.record_key, letter.seq, letter.version) == ("planning", "item", "B",
                                                                                              2, 1)
    assert letter.reason == "unit BOX is not configured" and letter.held_by is None
    assert [a.outcome for a in letter.attempts] == ["rejected"]
    assert msgspec.json.decode(letter.payload) == {"key": "B", "base_unit": "BOX"}
    assert store.checkpoint(FLOW) == str(store.head())  # a rejection is handled: it is not re-sent
    assert send(store, RecordingTarget()).records_out == 0

    put(store, "item", "B", base_unit="EA")  # a later change of the poisoned key waits behind it
    put(store, "item", "A", base_unit="KG")  # other keys go on
    later = RecordingTarget()
    result = send(store, later)

    assert later.sent() == [("item", "A", 2, {"key": "A", "base_unit": "KG"})]
    assert result.dead_lettered == 1
    parked = store.dead_letters(flow=FLOW)[1]
    assert (parked.record_key, parked.version, parked.held_by) == ("B", 2, letter.id)
    assert [a.outcome for a in parked.attempts] == ["held"]


def test_full_sends_the_current_state_and_sets_the_checkpoint_to_the_head(store: Store) -> None:
    seed_in_reverse_dependency_order(store)
    put(store, "item", "RM-2", base_unit="EA")
    put(store, "item", "RM-2", base_unit="KG")
    put(store, "item", "RM-3", base_unit="EA")
    remove(store, "item", "RM-3")
    target = RecordingTarget()

    result = send(store, target, mode="full", batch_size=1)

    assert target.sent() == [
        ("location", "P100", 1, {"key": "P100", "kind": "plant"}),
        ("item", "RM-1", 1, {"key": "RM-1", "base_unit": "EA"}),
        ("item", "RM-2", 2, {"key": "RM-2", "base_unit": "KG"}),
        ("item_location", "RM-1|P100", 1, {"key": "RM-1|P100", "lead_time_days": 3}),
        ("inventory_balance", "RM-1|P100|", 1, {"key": "RM-1|P100|", "on_hand": 5}),
    ]
    assert result.records_out == 5
    assert store.checkpoint(FLOW) == str(store.head()) == result.checkpoint

    after = RecordingTarget()
    assert send(store, after).records_out == 0 and after.writes == []


def test_dependency_order_is_derived_from_the_references_not_from_a_list() -> None:
    reversed_model = dict(reversed(list(ENTITIES.items())))  # declaration order no help at all
    order = dependency_order(["purchase_order", "inventory_balance", "sales_order", "item_location", "item",
                              "location", "supplier"], reversed_model)
    for name in order:
        for referenced in ENTITIES[name].references.values():
            if referenced in order and referenced != name:
                assert order.index(referenced) < order.index(name), (referenced, name, order)
    assert order.index("item_location") < order.index("inventory_balance")  # master data first among those free to go
    assert dependency_order(["inventory_balance", "location", "item_location", "item"]) == [
        "location", "item", "item_location", "inventory_balance"]


class WritingTarget(RecordingTarget):
    """A target during whose first write the ERP side keeps changing the store."""

    def __init__(self, store: Store, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store

    def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
        if not self.writes:
            put(self.store, "item", "RM-1", base_unit="KG")  # changed after the cut
            put(self.store, "item", "RM-9", base_unit="EA")  # created after the cut
            remove(self.store, "item_location", "RM-1|P100")  # deleted after the cut
            put(self.store, "inventory_balance", "RM-1|P100|", on_hand=99)
        return super().write(entity, records)


def test_plan_cut_sends_one_consistent_snapshot_in_dependency_order(store: Store) -> None:
    seed_in_reverse_dependency_order(store)
    cut = store.head()
    target = WritingTarget(store)

    result = send(store, target, mode="plan_cut", batch_size=1)

    assert target.sent() == [  # the state as of the cut, though the store moved on during it
        ("location", "P100", 1, {"key": "P100", "kind": "plant"}),
        ("item", "RM-1", 1, {"key": "RM-1", "base_unit": "EA"}),
        ("item_location", "RM-1|P100", 1, {"key": "RM-1|P100", "lead_time_days": 3}),
        ("inventory_balance", "RM-1|P100|", 1, {"key": "RM-1|P100|", "on_hand": 5}),
    ]
    assert result.records_out == 4
    assert store.checkpoint(FLOW) == result.checkpoint == str(cut) != str(store.head())

    second = RecordingTarget()
    send(store, second, mode="plan_cut")  # the next cut: the new state, and the deletion since the last one
    assert second.sent() == [
        ("location", "P100", 1, {"key": "P100", "kind": "plant"}),
        ("item", "RM-1", 2, {"key": "RM-1", "base_unit": "KG"}),
        ("item", "RM-9", 1, {"key": "RM-9", "base_unit": "EA"}),
        ("item_location", "RM-1|P100", 2, None),
        ("inventory_balance", "RM-1|P100|", 2, {"key": "RM-1|P100|", "on_hand": 99}),
    ]
    third = RecordingTarget()
    send(store, third, mode="plan_cut")
    assert ("item_location", "RM-1|P100", 2, None) not in third.sent()  # an old deletion is not sent again
    assert len(third.sent()) == 4


def test_a_plan_cut_interrupted_resumes_the_same_cut_after_the_last_confirmed_batch(store: Store) -> None:
    for n in range(6):
        put(store, "item", f"I{n}", base_unit="EA")
    put(store, "location", "P100", kind="plant")
    cut = store.head()

    class FailingAfter(RecordingTarget):
        def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
            if len(self.writes) == 3:
                raise PermanentError("platform is down", system="planning")
            return super().write(entity, records)

    first = FailingAfter()
    with pytest.raises(PermanentError):
        send(store, first, mode="plan_cut", batch_size=2)
    assert [key for _, key, _, _ in first.sent()] == ["P100", "I0", "I1", "I2", "I3"]
    mark = msgspec.json.decode(store.checkpoint(FLOW) or "")
    assert mark == {"cut": cut, "entity": "item", "after": "I3", "since": 0}

    put(store, "item", "I4", base_unit="KG")  # changes after the cut wait for the next one
    rest = RecordingTarget()
    result = send(store, rest, mode="plan_cut", batch_size=2)
    assert rest.sent() == [("item", "I4", 1, {"key": "I4", "base_unit": "EA"}),
                           ("item", "I5", 1, {"key": "I5", "base_unit": "EA"})]
    assert result.checkpoint == store.checkpoint(FLOW) == str(cut)


class FailsWhileHolding(RecordingTarget):
    """A target whose writes fail as a whole, transiently, whenever they carry key ``P``."""

    def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
        self.attempts += 1
        if any(record.key == "P" for record in records):
            raise TransientError("504 gateway timeout", system="planning")
        return super().write(entity, records)


def test_a_record_that_fails_alone_while_the_target_answers_is_dead_lettered(store: Store) -> None:
    for key in ("A", "P", "C"):
        put(store, "item", key, base_unit="EA")
    target = FailsWhileHolding()
    result = FlowResult(flow=FLOW, direction="outbound")

    covered = deliver_next(store, FLOW, target, ["item"], batch_size=10, retry=NoWait(max_attempts=2),
                           result=result, probe=lambda: True)

    assert covered == 3 and store.checkpoint(FLOW) == "3"
    assert sorted(key for _, key, _, _ in target.sent()) == ["A", "C"]
    [letter] = store.dead_letters(flow=FLOW)
    assert letter.record_key == "P" and "retries exhausted" in letter.reason
    assert [a.outcome for a in letter.attempts] == ["failed", "failed", "exhausted"]  # the batch's, then its own


def test_a_whole_batch_failure_while_the_target_is_down_dead_letters_nothing(store: Store) -> None:
    for key in ("A", "P"):
        put(store, "item", key, base_unit="EA")
    result = FlowResult(flow=FLOW, direction="outbound")

    with pytest.raises(TransientError):
        deliver_next(store, FLOW, FailsWhileHolding(), ["item"], batch_size=10, retry=NoWait(max_attempts=2),
                     result=result, probe=lambda: False)

    assert store.checkpoint(FLOW) is None and store.dead_letters() == []

def test_net_change_after_an_interrupted_plan_cut_sends_what_changed_since_the_cut_began(store: Store) -> None:
    put(store, "item", "I0", base_unit="EA")
    send(store, RecordingTarget())  # checkpoint: seq 1
    put(store, "item", "I1", base_unit="EA")
    put(store, "item", "I2", base_unit="EA")

    class FailingSecond(RecordingTarget):
        def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
            if self.writes:
                raise PermanentError("down", system="planning")
            return super().write(entity, records)

    with pytest.raises(PermanentError):
        send(store, FailingSecond(), mode="plan_cut", batch_size=1)
    assert store.checkpoint(FLOW).startswith("{")
    target = RecordingTarget()
    send(store, target)
    assert [key for _, key, _, _ in target.sent()] == ["I1", "I2"]

class LinkingTarget(RecordingTarget):
    """A target that makes a document per key and reports its id, as an ERP writing planned orders does."""

    links_external_ids = True

    def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
        outcome = super().write(entity, records)
        outcome.links = {record.key: record.external_id or f"doc,{record.key}" for record in records
                         if record.key in outcome.accepted}
        return outcome


@pytest.mark.parametrize("mode", ["changes", "full"])
def test_links_a_target_reports_are_kept_in_the_xref_and_passed_back_on_the_next_send(store: Store, mode) -> None:
    put(store, "item", "RM-1", base_unit="EA")
    target = LinkingTarget()
    send(store, target, mode=mode)
    assert store.xref_external("planning", "item", "RM-1") == "doc,RM-1"
    assert target.writes[0][1][0].external_id is None

    put(store, "item", "RM-1", base_unit="KG")
    send(store, target, mode=mode)
    assert target.writes[-1][1][0].external_id == "doc,RM-1"
    assert store.xref("planning", "item", "doc,RM-1") == "RM-1"


def test_targets_that_do_not_link_get_no_xref_lookups(store: Store) -> None:
    put(store, "item", "RM-1", base_unit="EA")
    target = RecordingTarget()
    send(store, target)
    assert target.writes[0][1][0].external_id is None
    assert store.xref_external("planning", "item", "RM-1") is None


class RefusingLinkingTarget(LinkingTarget):
    """A linking target that refuses the keys in ``refused`` until they are taken out."""

    def __init__(self, *refused: str) -> None:
        super().__init__(reject=dict.fromkeys(refused, "unit BOX is not configured"))


def test_a_replayed_dead_letter_keeps_the_link_the_target_gave_and_sends_the_link_it_has(store: Store) -> None:
    from syncfabric.flows.deadletters import plan, replay_keys

    put(store, "item", "RM-1", base_unit="EA")
    put(store, "item", "RM-2", base_unit="EA")
    send(store, RefusingLinkingTarget("RM-1"))  # RM-2 is linked; RM-1 is dead-lettered, never linked
    put(store, "item", "RM-2", base_unit="KG")
    send(store, RefusingLinkingTarget("RM-2"))  # RM-2's change is dead-lettered
    assert store.xref_external("planning", "item", "RM-1") is None
    assert {letter.record_key for letter in store.dead_letters(flow=FLOW)} == {"RM-1", "RM-2"}

    fixed = LinkingTarget()
    outcome = replay_keys(store, fixed, plan(store, store.dead_letters(flow=FLOW)), retry=NoWait(max_attempts=1))

    assert sorted(key for _, _, key in outcome.delivered) == ["RM-1", "RM-2"]
    assert store.xref_external("planning", "item", "RM-1") == "doc,RM-1"  # kept, as delivery keeps it
    sent = {record.key: record.external_id for _, records in fixed.writes for record in records}
    assert sent == {"RM-1": None, "RM-2": "doc,RM-2"}  # RM-2 updates the document it has, not a second one


def test_a_resend_keeps_the_links_the_target_gives(store: Store) -> None:
    from syncfabric.flows.resend import Selection, plan_resend, resend

    put(store, "item", "RM-1", base_unit="EA")
    send(store, RecordingTarget())  # delivered by a target that gave no ids
    replayed = plan_resend(store, FLOW, ["item"], Selection(key="RM-1"))
    target = LinkingTarget()
    result = resend(store, target, replayed, retry=NoWait(max_attempts=1))
    assert result.records_out == 1
    assert store.xref_external("planning", "item", "RM-1") == "doc,RM-1"


def test_a_repair_after_reconciliation_keeps_the_links_the_target_gives(store: Store) -> None:
    from syncfabric.connectors.base import Page, RawRecord
    from syncfabric.flows.reconcile import check_target, repair

    class ReadableLinkingTarget(LinkingTarget):
        """Holds only what it was sent, and reads it back with the version of each record."""

        capabilities = Capability.WRITE | Capability.READ_FULL

        def read_full(self, entity: str):  # type: ignore[no-untyped-def]
            held = {record.key: record.version for name, records in self.writes if name == entity
                    for record in records}
            yield Page([RawRecord({"_versions": {entity: version}}, f"{entity}:{key}")
                        for key, version in held.items()])

    put(store, "item", "RM-1", base_unit="EA")
    put(store, "item", "RM-2", base_unit="EA")
    with store.transaction() as tx:  # RM-2 was delivered before and is linked; the target lost both since
        tx.put_xref("planning", "item", "doc,RM-2", "RM-2")
    target = ReadableLinkingTarget()

    [check] = check_target(store, target, ["item"]) or []
    assert check.to_resend == ["RM-1", "RM-2"]
    repaired, letters = repair(store, FLOW, target, [check], retry=NoWait(max_attempts=1))

    assert (repaired, letters) == (2, [])
    sent = {record.key: record.external_id for _, records in target.writes for record in records}
    assert sent == {"RM-1": None, "RM-2": "doc,RM-2"}  # RM-2 updates the document it has
    assert store.xref_external("planning", "item", "RM-1") == "doc,RM-1"  # kept, as delivery keeps it


def test_a_key_two_entities_share_is_not_folded_into_one() -> None:
    from syncfabric.flows.outbound import newest

    distinct = [change(1, "item", "A"), change(2, "location", "B")]
    assert newest(distinct) is distinct  # the usual batch, as it is
    shared = [change(1, "item", "A"), change(2, "location", "A")]
    assert newest(shared) is shared
    folded = [change(1, "item", "A"), change(2, "location", "A"), change(3, "item", "B"), change(4, "item", "A")]
    assert [c.seq for c in newest(folded)] == [2, 3, 4]


def test_a_batch_is_split_by_entity_in_its_own_order() -> None:
    from syncfabric.flows.outbound import by_entity_of

    one = [change(1, "item", "A"), change(2, "item", "B")]
    assert by_entity_of(one) == {"item": one} and by_entity_of(one)["item"] is one
    mixed = [change(1, "item", "A"), change(2, "location", "P"), change(3, "item", "B"), change(4, "location", "Q")]
    split = by_entity_of(mixed)
    assert list(split) == ["item", "location"]
    assert [[c.seq for c in group] for group in split.values()] == [[1, 3], [2, 4]]
    assert by_entity_of([]) == {}


def test_pending_records_of_a_batch_are_those_of_each_change() -> None:
    from syncfabric.flows.outbound import Pending
    from syncfabric.store import Op

    changes = [change(1, "item", "A"), change(2, "item", "B", op=Op.DELETE), change(3, "item", "C", payload=None)]
    built = Pending.of_changes(changes)
    assert built == [Pending.of_change(c) for c in changes]
    assert [(p.entity, p.record.key, p.record.version, p.record.payload, p.seq, p.recorded_at) for p in built] == [
        ("item", "A", 1, {"key": "A"}, 1, T), ("item", "B", 1, None, 2, T), ("item", "C", 1, None, 3, T)]


T = dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC)


def change(seq: int, entity: str, key: str, *, op: Any = None, payload: bytes | None = b"") -> Any:
    from syncfabric.store import Change, Op

    body = msgspec.json.encode({"key": key}) if payload == b"" else payload
    return Change(seq, entity, key, 1, op or Op.UPSERT, "", body, T, Lineage("erp"))
