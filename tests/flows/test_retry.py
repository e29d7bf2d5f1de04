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


def test_backoff_is_capped_and_spread_by_the_jitter() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=0.5, max_delay=4.0, jitter=0.25)
    for attempt, nominal in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 4.0)):
        waits = [policy.delay(attempt) for _ in range(200)]
        assert all(nominal * 0.75 <= wait <= nominal * 1.25 for wait in waits), (attempt, min(waits), max(waits))
        assert max(waits) - min(waits) > nominal * 0.2  # spread, so that workers do not retry in step
    assert policy.delay(3, retry_after=60.0) == 4.0  # a system's Retry-After is honoured up to the cap


def test_the_estate_gives_each_outbound_flow_its_policies() -> None:
    from pathlib import Path

    from syncfabric.config import load_estate
    from syncfabric.flows.fallback import FallbackPolicy

    example = Path(__file__).parents[2] / "examples" / "walking-skeleton" / "estate.yaml"
    flow = load_estate(example, environ={"PLANNING_TOKEN": "x"}).estate.flows["planning-out"]

    assert RetryPolicy.from_spec(flow.delivery.retry) == RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=30.0,
                                                                     jitter=0.2)
    assert flow.delivery.fallback is not None
    assert FallbackPolicy.from_spec(flow.delivery.fallback) == FallbackPolicy(
        lag_seconds=300, error_rate=None, outage_seconds=60, window=20, catch_up_interval=30.0, reconcile=True)


def test_a_stop_ends_the_wait_before_a_retry_and_the_action_is_not_tried_again() -> None:
    import threading

    from syncfabric.flows.retry import Stopped

    stop = threading.Event()
    action = Flaky(TransientError("503"), TransientError("503"))
    policy = RetryPolicy(max_attempts=3, base_delay=3600.0, max_delay=3600.0, jitter=0.0)

    with pytest.raises(Stopped) as raised:
        call_with_retry(action, policy, stop=stop, on_retry=lambda *_: stop.set())

    assert action.calls == 1 and isinstance(raised.value.__cause__, TransientError)
    assert call_with_retry(Flaky(), policy, stop=stop) == "ok"  # a stop does not keep an action from its first try
