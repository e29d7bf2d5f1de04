"""Throughput per flow from the run history, and open quarantine and dead letters per flow and reason.

- a run's **rate** is ``records / (finished_at - started_at)`` (records in, records out);
- a flow's throughput sums its recent finished runs (:data:`RECENT`): records over their total duration;
- a **reason** is a rejection's text without what is particular to one record: the JSON path and the
  ``(system …, key …)`` and ``(value …)`` parts are cut, digits become ``N`` (``on_hand must be ≥ N``), at most
  80 characters.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import asdict, dataclass

from syncfabric.store import Store

RECENT = 20
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class FlowThroughput:
    flow: str
    runs: int
    """Finished runs counted (at most RECENT)."""
    failed: int
    records_in: int
    records_out: int
    quarantined: int
    seconds: float
    in_per_second: float | None
    out_per_second: float | None
    last_run_at: dt.datetime | None
    last_out_per_second: float | None

    def as_dict(self) -> dict[str, object]:
        shown = asdict(self)
        shown["last_run_at"] = self.last_run_at.isoformat() if self.last_run_at else None
        return shown


def throughput(store: Store, flows: list[str], *, recent: int = RECENT) -> list[FlowThroughput]:
    found = []
    for flow in flows:
        runs = [r for r in store.runs(flow, limit=recent) if r.finished_at is not None]
        seconds = sum(max(0.0, (r.finished_at - r.started_at).total_seconds()) for r in runs if r.finished_at)
        records_in = sum(r.records_in for r in runs)
        records_out = sum(r.records_out for r in runs)
        last = runs[0] if runs else None
        last_seconds = (last.finished_at - last.started_at).total_seconds() if last and last.finished_at else 0.0
        found.append(FlowThroughput(
            flow=flow, runs=len(runs), failed=sum(r.status.value == "failed" for r in runs),
            records_in=records_in, records_out=records_out, quarantined=sum(r.quarantined for r in runs),
            seconds=seconds, in_per_second=records_in / seconds if seconds > 0 else None,
            out_per_second=records_out / seconds if seconds > 0 else None,
            last_run_at=last.started_at if last else None,
            last_out_per_second=last.records_out / last_seconds if last and last_seconds > 0 else None))
    return found


def reason_kind(text: str) -> str:
    """A rejection reason without what is particular to one record (see the module's definition)."""
    text = text.split(" @ ", 1)[0]
    text = re.sub(r"\s*\((system|key|value) [^)]*\)", "", text)
    return _DIGITS.sub("N", text).strip()[:80]


@dataclass(frozen=True, slots=True)
class ReasonCount:
    flow: str
    reason: str
    count: int


def quarantine_by_reason(store: Store) -> list[ReasonCount]:
    """Open quarantine entries per flow and reason (an entry with several reasons counts under each)."""
    counts: Counter[tuple[str, str]] = Counter()
    for entry in store.quarantine():
        for reason in {reason_kind(r) for r in entry.reasons} or {""}:
            counts[(entry.flow, reason)] += 1
    return [ReasonCount(flow, reason, n) for (flow, reason), n in sorted(counts.items())]


def dead_letters_by_reason(store: Store) -> list[ReasonCount]:
    """Open dead letters per flow and reason."""
    counts: Counter[tuple[str, str]] = Counter(
        (letter.flow, reason_kind(letter.reason)) for letter in store.dead_letters())
    return [ReasonCount(flow, reason, n) for (flow, reason), n in sorted(counts.items())]
