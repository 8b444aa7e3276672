"""The rules beyond "N consecutive failures", on a fake clock and on both stores.

Issue 20: a failure rate and a slow-call rate over the last WINDOW seconds
(Resilience4j's time-based window and minimumNumberOfCalls), a measured
half-open (HALF_OPEN_MAX_CALLS probes a window, SUCCESS_THRESHOLD successes to
close, any failure reopens), each rule can be turned off, and the timed
open() / half_open() that pybreaker's users call by hand. The fleet-wide side
(several processes adding up to one window) is in test_cache_store.py and the
model tests.
"""

from __future__ import annotations

import pytest

from resilience.breaker import Outcome, Probe, State
from resilience.errors import CircuitOpenError

from .conftest import connection_refused, fail
from .conftest import outcomes as calls


def reason(breaker) -> str:
    return breaker.snapshot().reason


def test_failure_rate_opens_once_the_minimum_calls_are_made(make_breaker):
    breaker = make_breaker(failure_threshold=None, failure_rate=60, window=10, minimum_calls=6)
    calls(breaker, ".x.xx")  # 3 of 5 failed: 60 %, but only 5 calls
    assert breaker.state is State.CLOSED
    snap = breaker.snapshot()
    assert (snap.window_calls, snap.window_failures, snap.failure_rate) == (5, 3, 60.0)
    calls(breaker, "x")  # 4 of 6
    assert breaker.state is State.OPEN
    assert reason(breaker).startswith("failure rate 67% over the last 10 s")
    assert "(4 of 6 calls failed; threshold 60%)" in reason(breaker)


def test_calls_older_than_the_window_no_longer_count(make_breaker, clock):
    breaker = make_breaker(failure_threshold=None, failure_rate=50, window=10, minimum_calls=4)
    calls(breaker, "xxx")  # three failures: under the minimum
    clock.advance(11)
    calls(breaker, ".x")  # with the old ones: 4 of 5 failed; in the window: 1 of 2
    assert breaker.state is State.CLOSED
    assert breaker.snapshot().window_calls == 2
    calls(breaker, "xx")  # 3 of 4 in the window
    assert breaker.state is State.OPEN


def test_slow_calls_open_it_and_the_reason_says_so(make_breaker, clock):
    breaker = make_breaker(
        failure_threshold=None,
        slow_call_rate=50,
        slow_call_duration=1.0,
        window=10,
        minimum_calls=4,
    )

    def slow():
        clock.advance(1.5)  # under any timeout: the dependency answers, slowly
        return "rows"

    assert breaker.call(slow) == "rows"
    calls(breaker, "..")
    assert breaker.state is State.CLOSED  # 1 slow of 3
    permit = breaker.acquire()
    breaker.record_success(permit, seconds=1.2)  # the permit API says how long it took
    assert breaker.state is State.OPEN  # 2 of 4
    assert reason(breaker).startswith("slow calls 50% over the last 10 s")
    assert "took 1 s or more" in reason(breaker)
    assert breaker.snapshot().counters["slow"] == 2


def test_a_slow_failure_is_a_slow_call_too(make_breaker, clock):
    breaker = make_breaker(
        failure_threshold=None, slow_call_rate=100, slow_call_duration=0.5, minimum_calls=2
    )

    def slow_refusal():
        clock.advance(0.6)
        raise connection_refused()

    for _ in range(2):
        with pytest.raises(ConnectionRefusedError):
            breaker.call(slow_refusal)
    assert breaker.state is State.OPEN
    assert reason(breaker).startswith("slow calls 100%")


def test_each_rule_can_be_turned_off(make_breaker):
    breaker = make_breaker(failure_threshold=None)
    calls(breaker, "x" * 50)
    assert breaker.state is State.CLOSED
    assert breaker.snapshot().failure_threshold is None


def test_the_consecutive_and_rate_rules_sit_side_by_side(make_breaker):
    breaker = make_breaker(failure_threshold=3, failure_rate=60, window=10, minimum_calls=5)
    calls(breaker, ".x.x.x.x.x")  # never 3 in a row, but 5 of 10 (50 %)
    assert breaker.state is State.CLOSED
    calls(breaker, "x")  # 6 of 11 = 55 %, two in a row
    assert breaker.state is State.CLOSED
    calls(breaker, "x")  # 3 in a row (and 7 of 12 = 58 %): the consecutive rule
    assert breaker.state is State.OPEN
    assert reason(breaker).startswith("3 consecutive failures")


def test_the_window_starts_afresh_when_the_breaker_closes_again(make_breaker, clock):
    breaker = make_breaker(failure_threshold=None, failure_rate=50, minimum_calls=3)
    calls(breaker, "xxx")
    assert breaker.state is State.OPEN
    clock.advance(10)
    calls(breaker, ".")  # the probe closes it
    assert breaker.state is State.CLOSED
    snap = breaker.snapshot()
    assert (snap.window_calls, snap.window_failures) == (0, 0)
    calls(breaker, "x.")  # the old failures are gone: 1 of 2, under the minimum
    assert breaker.state is State.CLOSED
    calls(breaker, "x")  # 2 of 3
    assert breaker.state is State.OPEN


def test_half_open_takes_success_threshold_probes_to_close(make_breaker, clock):
    breaker = make_breaker(failure_threshold=1, half_open_max_calls=3, success_threshold=3)
    calls(breaker, "x")
    clock.advance(10)
    probes = [breaker.acquire() for _ in range(3)]
    assert all(isinstance(p, Probe) for p in probes)
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()  # three probes this window, fleet-wide
    assert info.value.reason == "half_open"
    breaker.record_success(probes[0])
    breaker.record_success(probes[1])
    snap = breaker.snapshot()
    assert snap.state is State.HALF_OPEN
    assert (snap.probes_taken, snap.probe_successes, snap.success_threshold) == (3, 2, 3)
    breaker.record_success(probes[2])
    assert breaker.state is State.CLOSED
    assert reason(breaker) == "3 probes succeeded"


def test_any_failure_in_half_open_opens_it_again(make_breaker, clock):
    breaker = make_breaker(failure_threshold=1, half_open_max_calls=2, success_threshold=2)
    calls(breaker, "x")
    clock.advance(10)
    first, second = breaker.acquire(), breaker.acquire()
    breaker.record_success(first)
    assert breaker.record_failure(connection_refused(), second) is Outcome.FAILURE
    assert breaker.state is State.OPEN
    snap = breaker.snapshot()
    assert snap.reason == "probe failed"
    assert snap.next_probe_at == pytest.approx(clock.time() + 10)


def test_successes_carry_over_to_the_next_window_when_the_threshold_is_above_the_probes(
    make_breaker, clock
):
    breaker = make_breaker(failure_threshold=1, half_open_max_calls=1, success_threshold=2)
    calls(breaker, "x")
    clock.advance(10)
    breaker.record_success(breaker.acquire())
    assert breaker.state is State.HALF_OPEN
    with pytest.raises(CircuitOpenError):
        breaker.acquire()  # this window's one probe is spent
    clock.advance(10)
    breaker.record_success(breaker.acquire())
    assert breaker.state is State.CLOSED


def test_open_and_half_open_by_hand_are_timed_not_forced(make_breaker, clock):
    breaker = make_breaker(recovery_timeout=10)
    breaker.open(actor="operator alice")
    snap = breaker.snapshot()
    assert (snap.state, snap.forced, snap.actor) == (State.OPEN, False, "operator alice")
    assert snap.next_probe_at == pytest.approx(clock.time() + 10)
    clock.advance(10)
    calls(breaker, ".")
    assert breaker.state is State.CLOSED
    breaker.half_open()
    assert breaker.state is State.HALF_OPEN
    with pytest.raises(ConnectionRefusedError):
        breaker.call(fail())
    assert breaker.state is State.OPEN
    assert breaker.snapshot().reason == "probe failed"
