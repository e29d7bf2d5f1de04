"""What the event path builds per change stays out of the cyclic garbage collector: a process that records and
delivers keeps its last commits' changes in memory, and every full collection would walk them (a pause of every
thread of the hub). The objects are still freed by reference counting, and read back intact."""

from __future__ import annotations

import gc

from syncfabric.bus import open_bus
from syncfabric.flows.outbound import Pending
from syncfabric.store import IncomingRecord, open_store


def test_changes_messages_and_pending_records_are_not_tracked_and_survive_a_collection() -> None:
    store = open_store("sqlite://")
    try:
        with store.transaction() as tx:
            tx.apply("location", [IncomingRecord(f"L{n}", f'{{"code": "L{n}"}}'.encode()) for n in range(5)])
        changes = store.changes(0)  # this process's own commit, from memory
        bus = open_bus(None, store)
        with bus.subscribe("memory-check", start=None) as sub:
            batch = sub.fetch(10, timeout=0)
        assert batch is not None
        pending = [Pending.of_change(message.change) for message in batch]
        built = [*changes, *(message for message in batch), *pending, changes[0].lineage]
        assert not any(gc.is_tracked(item) for item in built)

        gc.collect()
        assert [change.key for change in store.changes(0)] == [f"L{n}" for n in range(5)]
        assert [item.record.payload for item in pending] == [{"code": f"L{n}"} for n in range(5)]
        bus.close()
    finally:
        store.close()

