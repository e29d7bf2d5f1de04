"""When a streaming flow gives up on its channel: the fallback policy and the health it is judged by.

A flow streams while its target keeps up. It falls back to batch catch-up when any threshold of its policy is
passed: the oldest undelivered change is older than ``lag_seconds``; more than ``error_rate`` of its last
``window`` batches failed; or the target has failed without a single success for ``outage_seconds``. In fallback
the flow stops hammering the target: every ``catch_up_interval`` it sends the net changes since its checkpoint in
full batches, checks the target against the store, and streams again once a catch-up went through.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from syncfabric.config.schema import FallbackSpec


@dataclass(frozen=True)
class FallbackPolicy:
    lag_seconds: float | None = None
    error_rate: float | None = None
    outage_seconds: float | None = 60.0
    window: int = 20
    catch_up_interval: float = 30.0
    reconcile: bool = True
    """After a catch-up, compare what the target holds with the store (counts, versions, a hash per entity)."""

    @classmethod
    def from_spec(cls, spec: FallbackSpec) -> FallbackPolicy:
        return cls(lag_seconds=spec.lag_seconds, error_rate=spec.error_rate, outage_seconds=spec.outage_seconds,
                   window=spec.window, catch_up_interval=spec.catch_up_interval_seconds, reconcile=spec.reconcile)


class Health:
    """The recent record of one flow's deliveries, judged against its fallback policy."""

    def __init__(self, policy: FallbackPolicy) -> None:
        self.policy = policy
        self.outcomes: deque[bool] = deque(maxlen=policy.window)
        self.failing_since: float | None = None
        """When the current run of failures began (no success since), on the consumer's clock."""

    def record(self, ok: bool, now: float) -> None:
        self.outcomes.append(ok)
        if ok:
            self.failing_since = None
        elif self.failing_since is None:
            self.failing_since = now

    @property
    def error_rate(self) -> float:
        return self.outcomes.count(False) / len(self.outcomes) if self.outcomes else 0.0

    def verdict(self, lag_seconds: float, now: float) -> str | None:
        """Why the flow should fall back now, or None while it is healthy enough to stream."""
        p = self.policy
        if p.outage_seconds is not None and self.failing_since is not None:
            down = now - self.failing_since
            if down >= p.outage_seconds:
                return f"target failing for {down:.1f} s without a success (threshold {p.outage_seconds:g} s)"
        if p.error_rate is not None and len(self.outcomes) >= min(p.window, 5) and self.error_rate > p.error_rate:
            return (f"{self.error_rate:.0%} of the last {len(self.outcomes)} batches failed "
                    f"(threshold {p.error_rate:.0%})")
        if p.lag_seconds is not None and lag_seconds > p.lag_seconds:
            return f"oldest undelivered change is {lag_seconds:.1f} s old (threshold {p.lag_seconds:g} s)"
        return None

    def reset(self) -> None:
        self.outcomes.clear()
        self.failing_since = None
