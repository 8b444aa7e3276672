"""Guard = breaker -> retry -> deadline: one outcome per call, errors that say what failed."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from django.db.utils import ProgrammingError

from resilience import signals
from resilience.breaker import State
from resilience.clock import iso_utc
from resilience.deadline import current_deadline, current_timeouts, remaining_budget
from resilience.errors import CircuitOpenError, DeadlineExceeded, OperationFailed
from resilience.guard import Guard, guarded, guarded_async
from resilience.retry import RetryPolicy

from .conftest import connection_refused


class Flaky:
    """Fails ``failures`` times (optionally taking time on the fake clock), then answers."""

    def __init__(self, failures, exc=None, clock=None, takes=0.0, result="rows"):
        self.failures = failures
        self.exc = exc
        self.clock = clock
        self.takes = takes
        self.calls = 0
        self.result = result

    def __call__(self):
        self.calls += 1
        if self.clock is not None and self.takes:
            self.clock.advance(self.takes)
        if self.calls <= self.failures:
            raise self.exc if self.exc is not None else connection_refused()
        return self.result


def test_retries_connection_errors_with_the_story_waits_then_says_what_failed(
    make_breaker, clock, events
):
    breaker = make_breaker(failure_threshold=5)
    flaky = Flaky(failures=10)
    with pytest.raises(OperationFailed) as info:
        Guard("get_active_sessions", breaker=breaker)(lambda: None)  # decorator form
        Guard("get_active_sessions", breaker=breaker).call(flaky)
    error = info.value
    assert str(error) == "Failed to get_active_sessions: [Errno 111] Connection refused"
    assert (error.operation, error.error_type) == ("get_active_sessions", "ConnectionRefusedError")
    assert isinstance(error.__cause__, ConnectionRefusedError)
    assert flaky.calls == 3
    assert clock.slept == [0.1, 0.5]
    assert breaker.snapshot().failure_count == 1  # one call, one outcome
    assert breaker.snapshot().counters["retries"] == 2
    retries = events.of("resilience.retry")
    assert [r["attempt"] for r in retries] == [1, 2]
    assert [r["wait"] for r in retries] == [0.1, 0.5]
    assert all(r["error"] == "[Errno 111] Connection refused" for r in retries)
    failed = events.of("db.get_active_sessions_failed")
    assert failed == [
        {
            "operation": "get_active_sessions",
            "error": "[Errno 111] Connection refused",
            "error_type": "ConnectionRefusedError",
            "breaker": "db",
            "breaker_state": "closed",
            "attempts": 3,
        }
    ]
    traceback_records = [
        r for r in events.records if "get_active_sessions_failed_traceback" in r.getMessage()
    ]
    assert len(traceback_records) == 1
    assert traceback_records[0].levelno == logging.DEBUG and traceback_records[0].exc_info
    error_records = [r for r in events.records if r.levelno >= logging.ERROR]
    assert all(r.exc_info is None for r in error_records)  # tracebacks only at DEBUG


def test_a_retry_that_works_returns_the_result_and_counts_one_success(make_breaker, clock):
    breaker = make_breaker()
    flaky = Flaky(failures=1)
    assert Guard("load", breaker=breaker).call(flaky) == "rows"
    assert flaky.calls == 2 and clock.slept == [0.1]
    counters = breaker.snapshot().counters
    assert (counters["successes"], counters["failures"], counters["retries"]) == (1, 0, 1)


def test_query_errors_are_not_retried_and_do_not_count_against_the_database(make_breaker, clock):
    breaker = make_breaker(failure_threshold=1)
    flaky = Flaky(failures=5, exc=ProgrammingError('relation "trades" does not exist'))
    with pytest.raises(OperationFailed) as info:
        Guard("get_positions", breaker=breaker).call(flaky)
    assert flaky.calls == 1 and clock.slept == []
    assert info.value.error_type == "ProgrammingError"
    assert not info.value.connection_error
    assert breaker.state is State.CLOSED


def test_an_exception_without_a_message_still_says_what_it_was(make_breaker, events):
    breaker = make_breaker()
    with pytest.raises(OperationFailed) as info:
        Guard("get_active_sessions", breaker=breaker, retry=False).call(Flaky(1, TimeoutError()))
    assert str(info.value) == "Failed to get_active_sessions: TimeoutError"
    assert events.of("db.get_active_sessions_failed")[0]["error"] == "TimeoutError"


def test_waits_are_cut_and_no_attempt_starts_after_the_deadline(make_breaker, clock):
    breaker = make_breaker(call_deadline=1.0)
    flaky = Flaky(failures=10, clock=clock, takes=0.3)
    started = clock.monotonic()
    with pytest.raises(DeadlineExceeded) as info:
        Guard("get_latest_prices", breaker=breaker).call(flaky)
    # attempt (0.3) + wait 0.1 + attempt (0.3) = 0.7; a 0.5 s wait would leave nothing.
    assert flaky.calls == 2
    assert clock.monotonic() - started == pytest.approx(0.7)
    message = str(info.value)
    assert message.startswith("Failed to get_latest_prices: deadline of 1 s exceeded after 2")
    assert "last error: ConnectionRefusedError" in message
    assert info.value.error_type == "DeadlineExceeded"
    assert breaker.snapshot().failure_count == 1


def test_an_exhausted_outer_budget_stops_an_inner_guard_before_it_tries(make_breaker, clock):
    outer, inner = make_breaker("outer"), make_breaker("inner")
    flaky = Flaky(failures=0)

    def body():
        clock.advance(20)  # spends the whole 10 s budget
        return Guard("inner_op", breaker=inner).call(flaky)

    with pytest.raises(OperationFailed) as info:
        Guard("outer_op", breaker=outer, retry=False).call(body)
    assert flaky.calls == 0
    assert info.value.error_type == "DeadlineExceeded"


def test_no_retry_once_the_breaker_has_opened(make_breaker, clock):
    breaker = make_breaker()

    def opens_meanwhile():
        breaker.force_open("another request tripped it")
        raise connection_refused()

    with pytest.raises(OperationFailed):
        Guard("get_positions", breaker=breaker).call(opens_meanwhile)
    assert clock.slept == []


def test_a_half_open_probe_gets_one_try(make_breaker, clock):
    breaker = make_breaker(failure_threshold=1)
    with pytest.raises(OperationFailed):
        Guard("load", breaker=breaker, retry=False).call(Flaky(1))
    clock.advance(10)
    probe = Flaky(failures=1)
    with pytest.raises(OperationFailed):
        Guard("load", breaker=breaker).call(probe)
    assert probe.calls == 1
    assert breaker.state is State.OPEN


def test_a_probe_is_never_retried_even_when_the_breaker_closed_meanwhile(make_breaker, clock):
    """Issue 17: a half-open probe is one call to a recovering dependency. Here another probe
    closes the breaker while this one runs, so "the breaker is closed" cannot be what stops
    the retry: only the permit's being a probe does."""
    breaker = make_breaker(failure_threshold=1, half_open_max_calls=2)
    with pytest.raises(OperationFailed):
        Guard("load", breaker=breaker, retry=False).call(Flaky(1))
    clock.advance(10)
    reached = []

    def recovering():
        reached.append("probe")
        if len(reached) == 1:  # meanwhile, another request's probe succeeds and closes it
            breaker.record_success(breaker.acquire())
            assert breaker.state is State.CLOSED
        raise connection_refused()

    with pytest.raises(OperationFailed):
        Guard("load", breaker=breaker).call(recovering)
    assert reached == ["probe"], f"{len(reached)} calls reached the recovering dependency"
    assert clock.slept == []


def test_rejected_call_names_the_operation_breaker_and_next_probe(make_breaker, clock, events):
    breaker = make_breaker(failure_threshold=1)
    breaker.force_open()
    breaker.reset()
    with pytest.raises(OperationFailed):
        Guard("load", breaker=breaker, retry=False).call(Flaky(1))
    never = Flaky(0)
    with pytest.raises(CircuitOpenError) as info:
        Guard("get_active_sessions", breaker=breaker).call(never)
    assert never.calls == 0
    assert str(info.value).startswith(
        "Failed to get_active_sessions: circuit breaker 'db' is open; next probe due at "
    )
    assert info.value.retry_after == 10
    rejected = events.of("db.get_active_sessions_failed")[-1]
    assert rejected["error_type"] == "CircuitOpenError"
    assert rejected["breaker_state"] == "open"
    assert rejected["next_probe_at"] == iso_utc(clock.time() + 10)


def test_the_budget_is_visible_inside_for_connect_and_query_timeouts(make_breaker, clock, settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "CONNECT_TIMEOUT": 3.0, "QUERY_TIMEOUT": 5.0}
    breaker = make_breaker(call_deadline=4.0)
    seen = {}

    def body():
        seen["remaining"] = remaining_budget()
        clock.advance(2)
        seen["timeouts"] = current_timeouts()
        seen["deadline"] = current_deadline()
        return "ok"

    assert remaining_budget() is None and current_deadline() is None
    assert Guard("load", breaker=breaker).call(body) == "ok"
    assert seen["remaining"] == pytest.approx(4.0)
    assert seen["timeouts"].connect == pytest.approx(2.0)  # 3 s cut to the 2 s left
    assert seen["timeouts"].query == pytest.approx(2.0)
    assert current_deadline() is None
    assert current_timeouts().connect == 3.0


def test_nested_guards_on_one_breaker_make_one_outcome_and_retry_once(make_breaker, clock):
    breaker = make_breaker(failure_threshold=10)
    inner_calls = Flaky(failures=100)

    def outer():
        return Guard("questdb.select", breaker=breaker).call(inner_calls)

    with pytest.raises(OperationFailed) as info:
        Guard("get_active_sessions", breaker=breaker).call(outer)
    assert inner_calls.calls == 3  # not 3 x 3
    assert breaker.snapshot().failure_count == 1
    assert str(info.value) == "Failed to get_active_sessions: [Errno 111] Connection refused"


def test_guarded_uses_the_registry_and_settings(settings):
    settings.RESILIENCE = {
        "FAILURE_THRESHOLD": 2,
        "RETRY_WAITS": (0.0,),
        "BREAKERS": {"inventory": {"RETRY_ATTEMPTS": 2}},
    }
    flaky = Flaky(failures=10)
    with pytest.raises(OperationFailed):
        guarded("get_stock", flaky, breaker_name="inventory")
    assert flaky.calls == 2
    once = Flaky(failures=10)
    with pytest.raises(OperationFailed):
        guarded("get_stock", once, breaker_name="inventory", retry=False)
    assert once.calls == 1
    from resilience.registry import get_breaker

    assert get_breaker("inventory").state is State.OPEN
    with pytest.raises(CircuitOpenError):
        guarded("get_stock", flaky, breaker_name="inventory")


def test_secrets_never_reach_the_error_or_the_logs(make_breaker, events):
    breaker = make_breaker()
    leak = OSError("could not connect: postgresql://admin:Zq7-pw@db:8812/qdb password=Zq7-pw")
    with pytest.raises(OperationFailed) as info:
        Guard("load", breaker=breaker).call(Flaky(10, leak))
    assert "Zq7-pw" not in str(info.value)
    for record in events.records:
        assert "Zq7-pw" not in record.getMessage()


def test_retry_attempted_signal(make_breaker):
    breaker = make_breaker()
    seen = []

    def receiver(sender, **kwargs):
        seen.append((sender.name, kwargs["operation"], kwargs["attempt"], kwargs["wait"]))

    signals.retry_attempted.connect(receiver)
    try:
        Guard("load", breaker=breaker).call(Flaky(2))
    finally:
        signals.retry_attempted.disconnect(receiver)
    assert seen == [("db", "load", 1, 0.1), ("db", "load", 2, 0.5)]


def test_jitter_adds_at_most_the_configured_seconds():
    policy = RetryPolicy(waits=(0.1, 0.5), jitter=0.05)
    for _ in range(200):
        assert 0.1 <= policy.wait_before(2) <= 0.15
        assert 0.5 <= policy.wait_before(5) <= 0.55  # the last wait repeats


def test_async_guard_retries_and_returns(make_breaker, clock):
    breaker = make_breaker()
    calls = []

    async def load():
        calls.append(1)
        await asyncio.sleep(0)
        if len(calls) < 3:
            raise connection_refused()
        return ["row"]

    @Guard("get_async", breaker=breaker)
    async def decorated():
        return await load()

    assert asyncio.run(decorated()) == ["row"]
    assert len(calls) == 3 and clock.slept == [0.1, 0.5]
    assert breaker.snapshot().counters["successes"] == 1


def test_async_guard_cuts_a_hanging_attempt_at_the_deadline(settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "CALL_DEADLINE": 0.2}

    async def hangs():
        await asyncio.sleep(5)

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as info:
        asyncio.run(guarded_async("get_slow", hangs, breaker_name="slow"))
    assert time.monotonic() - started < 1.5
    assert "deadline of 0.2 s exceeded" in str(info.value)
    from resilience.registry import get_breaker

    slow = get_breaker("slow")
    assert slow.snapshot().failure_count == slow.config.timeout_weight  # a timeout weighs more
    assert slow.config.timeout_weight == 3  # 5 failures, or 2 timeouts, open it


def test_failure_log_lines_are_json_with_the_contract_fields(make_breaker, caplog):
    caplog.set_level(logging.ERROR, logger="resilience")
    with pytest.raises(OperationFailed):
        Guard("get_active_sessions", breaker=make_breaker(), retry=False).call(Flaky(1))
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    payload = json.loads(record.getMessage())
    assert payload["event_type"] == "db.get_active_sessions_failed"
    assert {"operation", "error", "error_type"} <= set(payload["data"])
    assert payload["data"]["error"]


def test_a_fallback_answers_for_a_failure_once_it_is_counted_and_logged(make_breaker, events):
    """Issue 19: Guard(fallback=...), outermost as Polly places it."""
    breaker = make_breaker(failure_threshold=2)
    seen = []

    def last_rates(failure):
        seen.append(failure)
        return ["cached"]

    guard = Guard("get_rates", breaker=breaker, retry=False, fallback=last_rates)
    assert guard.call(Flaky(1)) == ["cached"]
    assert isinstance(seen[0], OperationFailed) and seen[0].operation == "get_rates"
    assert breaker.snapshot().failure_count == 1  # counted as the failure it was
    assert events.of("db.get_rates_failed")[0]["error_type"] == "ConnectionRefusedError"
    assert guard.call(Flaky(0)) == "rows"  # a success is the function's own answer


def test_a_fallback_answers_for_a_refusal_without_calling(make_breaker):
    breaker = make_breaker()
    breaker.force_open()
    never = Flaky(0)
    answer = Guard("get_rates", breaker=breaker, fallback=lambda f: type(f).__name__).call(never)
    assert answer == "CircuitOpenError" and never.calls == 0
    assert guarded("get_rates", never, breaker_name="db", fallback=lambda f: "x") == "rows"


def test_a_fallback_never_swallows_a_cancellation(make_breaker):
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Guard("load", breaker=make_breaker(), fallback=lambda f: "no").call(interrupted)


def test_an_async_fallback_is_awaited(make_breaker):
    breaker = make_breaker(failure_threshold=1)

    async def refused():
        raise connection_refused()

    async def from_cache(failure):
        return f"cached after {failure.error_type}"

    async def scenario():
        first = await Guard("load", breaker=breaker, fallback=from_cache).call_async(refused)
        second = await guarded_async(
            "load", refused, breaker_name="x", retry=False, fallback=lambda f: "plain value"
        )
        return first, second

    assert asyncio.run(scenario()) == ("cached after ConnectionRefusedError", "plain value")
