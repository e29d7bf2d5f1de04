"""The inbox between a push source's thread and the flow: batches by size and time, failures after the batch."""

from __future__ import annotations

import threading
import time

import pytest

from syncfabric.connectors.base import Acknowledgement, Received
from syncfabric.connectors.inbox import Inbox, Subscription
from syncfabric.errors import TransientError


def item(number: int) -> Received:
    return Received([{"n": number}], f"#{number}", lambda first, outcomes: None)


def numbers(batch: list[Received]) -> list[int]:
    return [row["n"] for received in batch for row in received.rows]


def test_take_returns_at_most_a_batch_and_nothing_after_the_poll() -> None:
    inbox = Inbox()
    for number in range(7):
        inbox.put(item(number))
    assert numbers(inbox.take(5, max_wait=0.01, poll=0.1)) == [0, 1, 2, 3, 4]
    assert numbers(inbox.take(5, max_wait=0.01, poll=0.1)) == [5, 6]
    started = time.monotonic()
    assert inbox.take(5, max_wait=0.01, poll=0.1) == []
    assert time.monotonic() - started >= 0.09


def test_take_gathers_what_arrives_within_the_window_after_the_first() -> None:
    inbox = Inbox()

    def source() -> None:
        for number in range(3):
            inbox.put(item(number))
            time.sleep(0.02)
        time.sleep(0.5)
        inbox.put(item(99))

    thread = threading.Thread(target=source)
    thread.start()
    assert numbers(inbox.take(100, max_wait=0.2, poll=1.0)) == [0, 1, 2]
    thread.join()


def test_a_source_failure_is_raised_after_the_records_before_it() -> None:
    inbox = Inbox()
    inbox.put(item(1))
    inbox.fail(TransientError("connection lost", system="mes"))
    assert numbers(inbox.take(10, max_wait=0.05, poll=0.1)) == [1]
    with pytest.raises(TransientError, match="connection lost"):
        inbox.take(10, max_wait=0.05, poll=0.1)


def test_a_closed_subscription_ends_and_closes_once() -> None:
    closed: list[bool] = []
    inbox = Inbox()
    inbox.put(item(1))
    with Subscription(inbox, batch_size=10, max_wait=0.01, poll=0.05, on_close=lambda: closed.append(True)) as sub:
        assert numbers(next(sub)) == [1]
        sub.close()
        assert list(sub) == []
    assert closed == [True]
    assert Acknowledgement("stored").reasons == ()


def test_records_handed_over_together_are_taken_in_order_across_batches() -> None:
    inbox = Inbox()
    inbox.put_many([item(n) for n in range(5)])
    inbox.put(item(5))
    inbox.put_many([item(n) for n in range(6, 9)])
    inbox.fail(TransientError("connection lost", system="logistics"))
    assert numbers(inbox.take(3, max_wait=0.01, poll=0.1)) == [0, 1, 2]
    assert numbers(inbox.take(3, max_wait=0.01, poll=0.1)) == [3, 4, 5]
    assert numbers(inbox.take(10, max_wait=0.01, poll=0.1)) == [6, 7, 8]
    with pytest.raises(TransientError, match="connection lost"):
        inbox.take(10, max_wait=0.01, poll=0.1)


def test_a_delivery_larger_than_the_room_left_is_taken_in_parts_that_know_their_place() -> None:
    """A request of ten events between two single ones, taken four records at a time: its parts in order, each
    with the index of its first row and its rows' locations, acknowledged as the part it is."""
    acked: list[tuple[int, int]] = []
    request = Received([{"n": n} for n in range(10)], "POST /events/x", lambda first, outcomes: acked.append(
        (first, len(outcomes))), numbered=True)
    inbox = Inbox()
    inbox.put(item(100))
    inbox.put(request)
    inbox.put(item(200))
    batches = [inbox.take(4, max_wait=0.01, poll=0.1) for _ in range(3)]
    assert [numbers(batch) for batch in batches] == [[100, 0, 1, 2], [3, 4, 5, 6], [7, 8, 9, 200]]
    parts = [batches[0][1], batches[1][0], batches[2][0]]
    assert [part.first for part in parts] == [0, 3, 7]
    assert parts[2].locations() == ["POST /events/x [7]", "POST /events/x [8]", "POST /events/x [9]"]
    assert batches[2][1].locations() == ["#200"]
    for part in parts:
        part.ack(part.first, [Acknowledgement("stored")] * len(part.rows))
    assert acked == [(0, 3), (3, 4), (7, 3)]
    assert inbox.take(4, max_wait=0.01, poll=0.05) == []
