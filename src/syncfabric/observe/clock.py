"""The clock the observability layer reads: the wall clock, or one a simulation sets; and how a time stamp is read.

Delivery confirmations are stamped with :func:`now`, and freshness ages are measured against it unless a ``now`` is
passed. A demo that plays a day in minutes sets its simulated clock with :func:`use_clock` (and gives its records
source times on the same clock).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Clock = Callable[[], dt.datetime]


def _wall() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_clock: Clock = _wall


def now() -> dt.datetime:
    """The current time on the observability clock (timezone-aware, UTC)."""
    return _clock()


def set_clock(clock: Clock | None) -> None:
    """Use ``clock`` from now on (None: the wall clock again)."""
    global _clock
    _clock = clock or _wall


def parse_instant(text: str) -> dt.datetime:
    """An ISO 8601 time stamp (``2026-05-01T08:00:00Z``, ``2026-05-01T10:00:00+02:00``; one without an offset is
    UTC) as an aware datetime in UTC. Raises ValueError for text that is not one."""
    moment = dt.datetime.fromisoformat(text)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


@contextmanager
def use_clock(clock: Clock) -> Iterator[None]:
    """Use ``clock`` inside the block, the previous clock afterwards."""
    before = _clock
    set_clock(clock)
    try:
        yield
    finally:
        set_clock(before)
