"""A guarded call's budget, handed to the clients inside it (``timeout()``)."""

from __future__ import annotations

import time

import pytest
import requests

from resilience.breaker import CircuitBreaker
from resilience.deadline import MIN_ATTEMPT_BUDGET, timeout
from resilience.errors import DeadlineExceeded, Kind, OperationFailed
from resilience.guard import Guard
from testkit.tcp_servers import tcp_server


def test_outside_a_guarded_call_timeout_is_the_callers_own():
    assert timeout(5) == 5
    assert timeout() is None  # no budget: the client's default


def test_inside_a_guarded_call_timeout_is_what_is_left_cut_to_the_cap(make_breaker, clock):
    seen = []

    def call() -> str:
        seen.append(timeout(5))
        clock.advance(0.5)
        seen.append(timeout(5))
        seen.append(timeout(1))
        seen.append(timeout())
        return "done"

    assert Guard("fetch", breaker=make_breaker(), deadline=2.0, clock=clock).call(call) == "done"
    assert seen == [2.0, 1.5, 1.0, 1.5]


def test_with_no_budget_left_nothing_is_sent_and_nothing_counted(make_breaker, clock):
    breaker = make_breaker()
    sent = []

    def call() -> None:
        clock.advance(2.0 - MIN_ATTEMPT_BUDGET / 2)
        sent.append(timeout(5))

    with pytest.raises(OperationFailed) as info:
        Guard("fetch", breaker=breaker, deadline=2.0, clock=clock, retry=False).call(call)
    assert isinstance(info.value.__cause__, DeadlineExceeded)
    assert info.value.kind is Kind.NOT_ATTEMPTED
    assert "exceeded before trying" in str(info.value)
    assert sent == []
    assert breaker.snapshot().failure_count == 0


def test_a_sync_call_that_asks_no_budget_runs_past_the_deadline(make_breaker, clock):
    """What the README says a deadline cannot do: stop code that never asks it."""

    def slow() -> str:
        clock.advance(4.0)  # time.sleep(4) on the breaker's clock
        return "done"

    assert Guard("slow", breaker=make_breaker(), deadline=2.0, clock=clock).call(slow) == "done"


def test_a_client_fed_timeout_ends_a_hang_within_the_call_deadline():
    """requests to a server that never answers, inside a 0.4 s call: over in about 0.4 s."""
    breaker = CircuitBreaker("hung-api", failure_threshold=5)
    with tcp_server("hang") as port:
        started = time.monotonic()
        with pytest.raises(OperationFailed) as info:
            Guard("fetch", breaker=breaker, deadline=0.4).call(
                lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=timeout(30))
            )
        took = time.monotonic() - started
    assert info.value.kind is Kind.TIMEOUT
    assert 0.4 <= took < 0.9, took
