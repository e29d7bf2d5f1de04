"""The clock the observability layer reads: the wall clock, or one a simulation sets.

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


@contextmanager
def use_clock(clock: Clock) -> Iterator[None]:
    """Use ``clock`` inside the block, the previous clock afterwards."""
    before = _clock
    set_clock(clock)
    try:
        yield
    finally:
        set_clock(before)
