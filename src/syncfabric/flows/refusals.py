"""Refusals a target sends after the fact (a legacy ERP's import job booking an order file hours later, and
putting the rows it refused in a reject file), read back into dead letters of the outbound flow.

A write to such a target only drops a file: the flow records it as delivered. The job's answer comes later, so each
run of the flow starts by asking its connector for refusals (:meth:`Connector.refusals`). Each refused key becomes an
open dead letter of the flow with the target's reason (file, line, reference, why), holding the current canonical
record of the key: it holds the key (later changes park behind it, as for any dead letter), shows in ``syncfabric
deadletter list`` and is replayed after the fix with ``syncfabric replay FLOW --dead-letters``, which writes it
again. The dead letters and nothing else are committed first; then the connector may archive what it read
(:meth:`Connector.forget_refusals`). A crash between the two reads the same refusals again; a refusal whose
reason a dead letter of the key already carries is not recorded twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from syncfabric.connectors.base import Connector
from syncfabric.store import Attempt, NewDeadLetter, Store

log = logging.getLogger(__name__)


def collect_refusals(store: Store, flow_name: str, connector: Connector, entities: Sequence[str]) -> int:
    """Store the refusals the target reported since the last run as dead letters of ``flow_name``; how many
    were new."""
    added = 0
    for entity in entities:
        refusals = connector.refusals(entity)
        if not refusals:
            continue
        known = {(letter.record_key, letter.reason)
                 for letter in store.dead_letters(flow=flow_name, entity=entity, status=None)}
        held = store.held_keys(flow_name)
        rows = store.get_many(entity, sorted({refusal.key for refusal in refusals if refusal.key}))
        now = dt.datetime.now(dt.UTC)
        letters: dict[str, NewDeadLetter] = {}
        unplaced: set[str] = set()
        stored = {refusal.key for refusal in refusals if (refusal.key, refusal.reason) in known}
        for refusal in refusals:  # oldest first: a key refused twice (sent twice) keeps its newest refusal
            row = rows.get(refusal.key)
            if refusal.key in stored:
                continue  # read before a crash kept its file from being archived
            if row is None:  # not one of ours (or deleted since): the file stays where the target put it
                log.error("%s: %s refused a record the store does not hold as %s: %s; its file is left in place",
                          flow_name, connector.system, entity, refusal.reason)
                unplaced.add(refusal.source)
                continue
            letters[refusal.key] = NewDeadLetter(
                flow=flow_name, system=connector.system, entity=entity, record_key=refusal.key, seq=row.last_seq,
                version=row.version, payload=None if row.payload is None else row.payload.decode(),
                reason=refusal.reason, attempts=[Attempt(now, "rejected", refusal.reason)],
                held_by=held.get((entity, refusal.key)))
        if letters:
            with store.transaction() as tx:
                tx.add_dead_letters(list(letters.values()))
            log.warning("%s: %s refused %d records on import (keys %s)", flow_name, connector.system, len(letters),
                        ", ".join(sorted(letters)[:10]))
            added += len(letters)
        connector.forget_refusals(entity, [refusal.source for refusal in refusals if refusal.source not in unplaced])
    return added
