"""Helpers for continuous-delivery tests: the simulated planning platform over real HTTP, and a store to feed it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import msgspec

from syncfabric.connectors.planning.configuration import PlanningConfig
from syncfabric.connectors.planning.connector import PlanningConnector
from syncfabric.flows.stream import StreamConsumer, StreamStats
from syncfabric.store import IncomingRecord, Lineage, Store

FLOW = "planning-stream"


def connector(base_url: str, **settings: Any) -> PlanningConnector:
    return PlanningConnector("planning", msgspec.convert({"base_url": base_url, **settings}, PlanningConfig))


def put_items(store: Store, *changes: tuple[str, str]) -> None:
    """Record one change per (item id, description), each in its own transaction, as events arrive."""
    for key, description in changes:
        with store.transaction() as tx:
            payload = msgspec.json.encode({"item_id": key, "base_unit": "EA", "description": description})
            tx.apply("item", [IncomingRecord(key, payload, Lineage("mes"))])


def journal(control: httpx.Client) -> list[dict[str, Any]]:
    return [entry for entry in control.get("/journal").json() if entry["stream"] == "item"]


def effective_versions(control: httpx.Client) -> dict[str, list[int]]:
    """Per key, the versions that changed what the platform holds, in the order it applied them."""
    applied: dict[str, list[int]] = {}
    for entry in journal(control):
        if entry["effect"] in ("created", "updated", "unchanged", "deleted"):
            applied.setdefault(entry["key"], []).append(entry["version"])
    return applied


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@contextmanager
def running(consumer: StreamConsumer) -> Iterator[list[StreamStats]]:
    """Run ``consumer`` in a thread for the block; yields a list that holds its final stats afterwards."""
    stop = threading.Event()
    final: list[StreamStats] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            final.append(consumer.run(stop))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"consumer-{consumer.flow}", daemon=True)
    thread.start()
    try:
        yield final
    finally:
        stop.set()
        thread.join(timeout=30)
    if failure:
        raise failure[0]
