"""Planned orders on their way back into the ERPs: each ERP's flow writes the plants it owns, and proposals that
break a review rule wait for a planner instead of being written.

An outbound flow with ``write_back:`` writes through :class:`WriteBackConnector`:

- a planned order of a location not in ``write_back.locations`` is another ERP's: it is neither written nor
  rejected here (its own ERP's flow writes it), and the checkpoint moves past it;
- a ``proposed`` order that breaks a rule of ``write_back.review`` (quantity above ``max_quantity``, due date
  already past on the observability clock) is rejected with a reason starting ``waits for planner review``: it
  becomes an open dead letter of the flow, holding its key, visible in ``syncfabric plan review`` and
  ``syncfabric deadletter list``; ``syncfabric plan approve`` sends it on, as approved by that planner;
- a ``proposed`` order within the rules is written as ``approved``; other statuses pass unchanged (the ERP's
  connector decides what it creates of them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import msgspec

from syncfabric.config.schema import PlanReviewSpec, WriteBackSpec
from syncfabric.connectors.base import Connector, OutboundRecord, WriteOutcome
from syncfabric.flows.outbound_mapping import WrappedConnector
from syncfabric.observe import clock
from syncfabric.store import DeadLetter, Store

if TYPE_CHECKING:
    from syncfabric.flows.deadletters import DeadLetterReplay
    from syncfabric.flows.runtime import Runtime

ENTITY = "planned_order"
REVIEW = "waits for planner review"
"""How the reason of every dead letter of a waiting planned order starts."""


def review_reasons(payload: dict[str, Any], rules: PlanReviewSpec, today: dt.date) -> list[str]:
    """Why a planner has to look at this planned order (empty: it may be written as it is)."""
    reasons = []
    quantity = payload.get("quantity") or {}
    if rules.max_quantity is not None:
        try:
            value = Decimal(str(quantity.get("value")))
        except (InvalidOperation, ValueError):
            value = None
        if value is not None and value > Decimal(str(rules.max_quantity)):
            reasons.append(f"quantity {value:f} {quantity.get('unit', '')} above {rules.max_quantity:g}".replace(
                "  ", " "))
    due = payload.get("due_date")
    if rules.past_due and due:
        try:
            day = dt.date.fromisoformat(str(due))
        except ValueError:
            day = None
        if day is not None and day < today:
            reasons.append(f"due date {day} already past (today {today})")
    return reasons


class WriteBackConnector(WrappedConnector):
    """``inner`` writing only this ERP's planned orders, with the planner review of ``spec`` on the way.
    ``approved`` are keys a planner approved: they are written as approved whatever the rules say."""

    def __init__(self, inner: Connector, spec: WriteBackSpec, *, approved: Collection[str] = ()) -> None:
        super().__init__(inner)
        self.spec = spec
        self.approved = set(approved)

    def owns(self, payload: dict[str, Any]) -> bool:
        return not self.spec.locations or str(payload.get("location_id")) in self.spec.locations

    def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
        if entity != ENTITY:
            return self.inner.write(entity, records)
        today = clock.now().date()
        outcome = WriteOutcome()
        send: list[OutboundRecord] = []
        for record in records:
            payload = record.payload
            if payload is None:
                send.append(record)
                continue
            if not self.owns(payload):
                continue  # another ERP's plant: its own flow writes it
            if record.key in self.approved:
                send.append(msgspec.structs.replace(record, payload={**payload, "status": "approved"}))
                continue
            if payload.get("status") == "proposed" and self.spec.review is not None:
                reasons = review_reasons(payload, self.spec.review, today)
                if reasons:
                    outcome.rejected[record.key] = f"{REVIEW}: {'; '.join(reasons)}"
                    continue
                payload = {**payload, "status": "approved"}
            send.append(msgspec.structs.replace(record, payload=payload))
        if send:
            written = self.inner.write(entity, send)
            outcome.accepted += written.accepted
            outcome.rejected.update(written.rejected)
            outcome.links.update(written.links)
        return outcome


def waiting(store: Store, flow: str | None = None) -> list[DeadLetter]:
    """The open dead letters of planned orders waiting for planner review (of one flow, or every flow)."""
    return [letter for letter in store.dead_letters(flow=flow, entity=ENTITY) if letter.reason.startswith(REVIEW)]


def approve(runtime: Runtime, flow: str, keys: Collection[str], *, actor: str) -> DeadLetterReplay:
    """Write the planned orders ``keys`` waiting in ``flow`` as approved by ``actor``: each key's newest change
    is sent through the flow's connector with the review lifted for it, and its dead letters are closed
    (``replayed``, by ``actor``); an order the ERP refuses stays open with the ERP's reason."""
    from syncfabric.flows.deadletters import plan, replay_keys

    spec = runtime.estate.flows[flow]
    chosen = [letter for letter in waiting(runtime.store, flow) if letter.record_key in keys]
    with runtime.connector(spec.system, flow) as connector:
        if isinstance(connector, WriteBackConnector):
            connector.approved = set(keys)
        return replay_keys(runtime.store, connector, plan(runtime.store, chosen), actor=actor)
