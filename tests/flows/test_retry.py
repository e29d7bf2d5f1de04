"""Retry of transient failures: what is retried, how long it waits, when it gives up."""

from __future__ import annotations

import pytest

from syncfabric.errors import PermanentError, TransientError
from syncfabric.flows.retry import RetryPolicy, call_with_retry


class Flaky:
    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def test_waits_what_the_system_asks_for_then_backs_off_exponentially() -> None:
    slept: list[float] = []
    action = Flaky(TransientError("429", retry_after=4.0), TransientError("503"), TransientError("503"))
    policy = RetryPolicy(max_attempts=4, base_delay=1.0, jitter=0.0)

    assert call_with_retry(action, policy, sleep=slept.append) == "ok"

    assert slept == [4.0, 2.0, 4.0]
    assert action.calls == 4


def test_retry_after_is_capped_and_jitter_stays_within_its_spread() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0, jitter=0.2)
    assert policy.delay(1, retry_after=120.0) == 10.0
    assert all(0.8 * 4 <= policy.delay(3) <= 1.2 * 4 for _ in range(200))
    assert policy.delay(30) <= 10.0 * 1.2


def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    slept: list[float] = []
    retries: list[int] = []
    last = TransientError("still down")
    action = Flaky(TransientError("down"), TransientError("down"), last)

    with pytest.raises(TransientError) as raised:
        call_with_retry(action, RetryPolicy(max_attempts=3, jitter=0.0), sleep=slept.append,
                        on_retry=lambda attempt, _exc, _wait: retries.append(attempt))

    assert raised.value is last and action.calls == 3
    assert retries == [1, 2] and len(slept) == 2


def test_permanent_errors_are_never_retried() -> None:
    slept: list[float] = []
    action = Flaky(PermanentError("401 unauthorized"))

    with pytest.raises(PermanentError):
        call_with_retry(action, RetryPolicy(), sleep=slept.append)

    assert action.calls == 1 and slept == []
