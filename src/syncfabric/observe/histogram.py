"""Latency histograms of the delivery log: counts per fixed bucket of seconds, summed over any set of batches.

The buckets are fixed (stored data refers to them by number, so they never change): bucket 0 holds latencies of 0;
bucket ``b`` (1 .. ``len(EDGES)``) holds those in ``(EDGES[b - 2], EDGES[b - 1]]`` (bucket 1: ``(0, 1 ms]``); the
last, ``len(EDGES) + 1``, those above ``EDGES[-1]``. The edges are 20 per decade from 1 ms to 10⁶ s (about 11.6
days), a factor 10^(1/20) ≈ 1.122 apart, together with :data:`LATENCY_BUCKETS` (the Prometheus export's bounds).

**Resolution**: a percentile is the upper edge of the bucket its rank falls in, and never more than the exact
maximum; so it is never below the exact nearest-rank percentile and at most 12.2 % above it (at most 1 ms for one
below 1 ms; exact for 0 and for values on an edge; one above the last edge reads as the maximum). A count of
latencies at most one of :data:`LATENCY_BUCKETS` is exact.
"""

from __future__ import annotations

import bisect
import math

LATENCY_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0, 12 * 3600.0,
                   86400.0)
"""Delivery-latency histogram bounds of the Prometheus export, in seconds: from a second to a day (nightly batch
lands in the top ones); each is an edge of the stored buckets."""

EDGES: tuple[float, ...] = tuple(sorted({float(f"{10 ** (k / 20 - 3):.6g}") for k in range(181)}
                                        | set(LATENCY_BUCKETS)))
"""Upper edges of buckets 1 .. len(EDGES), in seconds."""

Counts = tuple[tuple[int, int], ...]
"""(bucket, count) pairs, bucket ascending, counts above 0: a histogram as the delivery log stores it."""


def bucket(seconds: float) -> int:
    """The bucket of a latency of ``seconds`` (0 and below: bucket 0)."""
    return 0 if seconds <= 0 else bisect.bisect_left(EDGES, seconds) + 1


def upper_edge(b: int) -> float:
    """The largest latency bucket ``b`` holds (infinity for the last)."""
    return 0.0 if b == 0 else EDGES[b - 1] if b <= len(EDGES) else math.inf


class Histogram:
    """Latency counts per bucket, with the exact count, sum and maximum."""

    __slots__ = ("counts", "maximum", "records", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.records = 0
        self.total = 0.0
        self.maximum = 0.0

    def add(self, counts: Counts, records: int, total: float, maximum: float) -> None:
        """Add a stored histogram (a delivery-log row's)."""
        for b, n in counts:
            self.counts[b] = self.counts.get(b, 0) + n
        self.records += records
        self.total += total
        self.maximum = max(self.maximum, maximum)

    def add_value(self, seconds: float, n: int = 1) -> None:
        """Add ``n`` latencies of ``seconds`` (below 0 counts as 0)."""
        seconds = max(0.0, seconds)
        b = bucket(seconds)
        self.counts[b] = self.counts.get(b, 0) + n
        self.records += n
        self.total += seconds * n
        self.maximum = max(self.maximum, seconds)

    def stored(self) -> Counts:
        return tuple(sorted(self.counts.items()))

    def percentile(self, share: float) -> float | None:
        """The nearest-rank percentile (``share`` in 0..1), to the resolution of the module's doc; None when
        empty."""
        if self.records == 0:
            return None
        rank = min(max(1, math.ceil(share * self.records)), self.records)
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return min(upper_edge(b), self.maximum)
        return self.maximum

    def at_most(self, bound: float) -> int:
        """How many latencies are at most ``bound`` (exact when ``bound`` is an edge, see :data:`EDGES`)."""
        return sum(n for b, n in self.counts.items() if upper_edge(b) <= bound)
