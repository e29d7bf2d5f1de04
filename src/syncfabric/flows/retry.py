"""Retry of transient failures: capped exponential backoff with jitter, honouring a system's Retry-After."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from syncfabric.errors import TransientError

if TYPE_CHECKING:
    from syncfabric.config.schema import RetrySpec

T = TypeVar("T")


class Stopped(Exception):
    """A stop request cut short the wait before a retry: the action did not succeed and is not tried again. The
    caller ends without recording an outcome (a consumer keeps its batch unacknowledged for the next start)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a flow retries a transient failure. Permanent failures are never retried."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.2
    """Random spread, as a fraction of the delay, so that many workers do not retry in step."""

    @classmethod
    def from_spec(cls, spec: RetrySpec) -> RetryPolicy:
        """The policy an estate file gives a flow (``delivery: {retry: ...}``)."""
        return cls(max_attempts=spec.max_attempts, base_delay=spec.base_delay_seconds,
                   max_delay=spec.max_delay_seconds, jitter=spec.jitter)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (attempts count from 1)."""
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        delay = min(self.base_delay * 2 ** (attempt - 1), self.max_delay)
        return delay * (1 + random.uniform(-self.jitter, self.jitter))


def call_with_retry(
    action: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, TransientError, float], None] | None = None,
    stop: threading.Event | None = None,
) -> T:
    """Run ``action``; on TransientError wait and try again, up to the policy's attempts, then re-raise.

    With ``stop``, the wait ends as soon as it is set, and :class:`Stopped` is raised instead of trying again (a
    process told to stop does not sit out a backoff of up to ``max_delay``); ``sleep`` is not used then."""
    attempt = 1
    while True:
        try:
            return action()
        except TransientError as exc:
            if attempt >= policy.max_attempts:
                raise
            wait = policy.delay(attempt, exc.retry_after)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            if stop is None:
                sleep(wait)
            elif stop.wait(wait):
                raise Stopped(f"stopped while waiting to retry after attempt {attempt}: {exc}") from exc
            attempt += 1
