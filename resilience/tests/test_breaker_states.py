"""The state machine on a fake clock: every transition and edge, no sleeping."""

from __future__ import annotations

import asyncio
import errno

import pytest
from django.db.utils import OperationalError as DjangoOperationalError
from django.db.utils import ProgrammingError

from resilience import signals
from resilience.breaker import Outcome, Probe, State
from resilience.errors import CircuitOpenError

from .conftest import connection_refused, fail


def trip(breaker, times=None):
    for _ in range(times or breaker.failure_threshold):
        with pytest.raises(ConnectionRefusedError):
            breaker.call(fail())


def test_starts_closed_and_passes_results_through(make_breaker):
    breaker = make_breaker()
    assert breaker.state is State.CLOSED
    assert breaker.call(lambda x, y=1: x + y, 2, y=3) == 5
    assert breaker.snapshot().counters["successes"] == 1


def test_opens_after_threshold_consecutive_failures_not_before(make_breaker):
    breaker = make_breaker(failure_threshold=3)
    trip(breaker, 2)
    assert breaker.state is State.CLOSED
    assert breaker.snapshot().failure_count == 2
    trip(breaker, 1)
    assert breaker.state is State.OPEN
    assert breaker.public_state == "open"


def test_a_success_resets_the_consecutive_count(make_breaker):
    breaker = make_breaker(failure_threshold=3)
    trip(breaker, 2)
    breaker.call(lambda: None)
    trip(breaker, 2)
    assert breaker.state is State.CLOSED
    assert breaker.snapshot().failure_count == 2


def test_open_rejects_without_calling_and_says_when_to_come_back(make_breaker, clock):
    breaker = make_breaker(recovery_timeout=10)
    trip(breaker)
    called = []
    clock.advance(4)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(called.append, 1)
    assert called == []
    error = info.value
    assert error.breaker_name == "db"
    assert error.next_probe_at == pytest.approx(clock.time() + 6)
    assert error.retry_after == 6
    assert "circuit breaker 'db' is open" in str(error).lower()
    assert "next probe due at" in str(error)
    assert breaker.snapshot().counters["rejections"] == 1


def test_half_open_after_recovery_timeout_exactly(make_breaker, clock):
    breaker = make_breaker(recovery_timeout=10)
    trip(breaker)
    clock.advance(9.999)
    assert breaker.state is State.OPEN
    clock.advance(0.001)
    assert breaker.state is State.HALF_OPEN
    assert breaker.allows_traffic()


def test_probe_success_closes_and_clears_counts(make_breaker, clock):
    breaker = make_breaker()
    trip(breaker)
    clock.advance(10)
    assert breaker.call(lambda: "up") == "up"
    snap = breaker.snapshot(history=True)
    assert snap.state is State.CLOSED
    assert snap.failure_count == 0
    assert [(t.from_state, t.to_state) for t in snap.transitions] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert snap.counters["probes"] == 1


def test_probe_failure_reopens_for_a_full_timeout(make_breaker, clock):
    breaker = make_breaker(recovery_timeout=10)
    trip(breaker)
    first_opened = breaker.snapshot().opened_at
    clock.advance(10)
    with pytest.raises(ConnectionRefusedError):
        breaker.call(fail())
    snap = breaker.snapshot(history=True)
    assert snap.state is State.OPEN
    assert snap.opened_at == clock.time() > first_opened
    assert snap.next_probe_at == clock.time() + 10
    assert snap.transitions[-1].from_state == "half_open"
    assert snap.transitions[-1].reason == "probe failed"


def test_only_half_open_max_calls_probes_at_once(make_breaker, clock):
    breaker = make_breaker(half_open_max_calls=2)
    trip(breaker)
    clock.advance(10)
    first, second = breaker.acquire(), breaker.acquire()
    assert isinstance(first, Probe) and isinstance(second, Probe)
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.reason == "half_open"
    # The refused caller is told to come back when the next window starts.
    assert info.value.next_probe_at == clock.time() + 10
    breaker.record_success(first)
    assert breaker.state is State.CLOSED
    # The second probe's late failure belongs to a finished epoch: no reopening.
    breaker.record_failure(connection_refused(), second)
    assert breaker.state is State.CLOSED


def test_a_hung_probe_does_not_block_recovery_for_ever(make_breaker, clock):
    breaker = make_breaker(recovery_timeout=10)
    trip(breaker)
    clock.advance(10)
    hung = breaker.acquire()
    assert isinstance(hung, Probe)
    clock.advance(5)
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    clock.advance(5)  # the next recovery window
    fresh = breaker.acquire()
    assert isinstance(fresh, Probe) and fresh.window == hung.window + 1
    breaker.record_success(fresh)
    assert breaker.state is State.CLOSED


def test_an_ignored_probe_gives_its_permit_back(make_breaker, clock):
    breaker = make_breaker(ignore=KeyError)
    trip(breaker)
    clock.advance(10)
    with pytest.raises(KeyError):
        breaker.call(fail(KeyError("missing")))
    assert breaker.state is State.HALF_OPEN
    assert isinstance(breaker.acquire(), Probe)  # the slot was released
    assert breaker.snapshot().counters["ignored"] == 1


def test_cancellation_is_not_a_failure(make_breaker, clock):
    breaker = make_breaker(failure_threshold=1)
    permit = breaker.acquire()
    assert breaker.record_failure(KeyboardInterrupt(), permit) is Outcome.IGNORED
    assert breaker.state is State.CLOSED


def test_query_errors_mean_the_server_answered(make_breaker, clock):
    breaker = make_breaker(failure_threshold=1)
    with pytest.raises(ProgrammingError):
        breaker.call(fail(ProgrammingError("syntax error at or near 'SELEC'")))
    assert breaker.state is State.CLOSED
    assert breaker.snapshot().counters == {
        "successes": 1,
        "failures": 0,
        "rejections": 0,
        "ignored": 0,
        "retries": 0,
        "probes": 0,
        "probe_successes": 0,
        "probe_failures": 0,
        "slow": 0,
    }
    # ... and as a probe, a query error closes the breaker.
    trip(breaker, 1)
    clock.advance(10)
    with pytest.raises(ProgrammingError):
        breaker.call(fail(ProgrammingError("no such table")))
    assert breaker.state is State.CLOSED


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        OSError(errno.ENETUNREACH, "Network is unreachable"),
        DjangoOperationalError("server closed the connection unexpectedly"),
    ],
)
def test_connection_errors_count(make_breaker, exc):
    breaker = make_breaker(failure_threshold=1)
    permit = breaker.acquire()
    assert breaker.record_failure(exc, permit) is Outcome.FAILURE
    assert breaker.state is State.OPEN


def test_record_and_ignore_rules_by_type_and_predicate(make_breaker):
    breaker = make_breaker(
        failure_threshold=1,
        record=lambda exc: isinstance(exc, ValueError) and "boom" in str(exc),
        ignore=(LookupError,),
    )
    assert breaker.record_failure(ValueError("fine"), breaker.acquire()) is Outcome.SUCCESS
    assert breaker.record_failure(KeyError("k"), breaker.acquire()) is Outcome.IGNORED
    assert breaker.state is State.CLOSED
    assert breaker.record_failure(ValueError("boom"), breaker.acquire()) is Outcome.FAILURE
    assert breaker.state is State.OPEN


def test_backoff_doubles_the_open_time_after_each_failed_probe_up_to_a_cap(make_breaker, clock):
    breaker = make_breaker(recovery_timeout=10, backoff_multiplier=2, max_recovery_timeout=30)
    trip(breaker)
    durations = []
    for _ in range(4):
        snap = breaker.snapshot()
        durations.append(snap.next_probe_at - snap.opened_at)
        clock.advance(durations[-1])
        with pytest.raises(ConnectionRefusedError):
            breaker.call(fail())
    assert durations == [10, 20, 30, 30]
    clock.advance(30)
    breaker.call(lambda: None)
    trip(breaker)
    snap = breaker.snapshot()
    assert snap.next_probe_at - snap.opened_at == 10  # closing forgets the backoff


def test_force_open_rejects_until_reset_and_never_probes(make_breaker, clock):
    breaker = make_breaker()
    breaker.force_open()
    clock.advance(10_000)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: None)
    assert info.value.reason == "forced_open"
    assert info.value.next_probe_at is None and info.value.retry_after is None
    assert "forced open" in str(info.value)
    snap = breaker.snapshot()
    assert (snap.state, snap.forced, snap.next_probe_at) == (State.OPEN, True, None)
    breaker.reset()
    assert breaker.call(lambda: 1) == 1
    assert breaker.forced is False


def test_force_closed_lets_everything_through_and_counts_nothing(make_breaker):
    breaker = make_breaker(failure_threshold=1)
    trip(breaker, 1)
    breaker.force_closed()
    trip(breaker, 5)
    snap = breaker.snapshot()
    assert (snap.state, snap.forced, snap.failure_count) == (State.CLOSED, True, 0)
    breaker.reset()
    trip(breaker, 1)
    assert breaker.state is State.OPEN


def test_reset_from_open_closes_and_forgets_failures(make_breaker):
    breaker = make_breaker()
    trip(breaker)
    breaker.reset()
    assert breaker.state is State.CLOSED
    assert breaker.snapshot().failure_count == 0
    assert breaker.snapshot(history=True).transitions[-1].reason == "reset by an operator"


def test_opened_at_never_moves_backwards_across_reopenings(make_breaker, clock):
    breaker = make_breaker(recovery_timeout=1)
    seen = []
    for _ in range(5):
        trip(breaker)
        seen.append(breaker.snapshot().opened_at)
        clock.advance(1)
        breaker.call(lambda: None)
    assert seen == sorted(seen) and len(set(seen)) == 5


def test_stale_permit_failure_after_the_state_moved_on_is_not_counted(make_breaker, clock):
    breaker = make_breaker(failure_threshold=2)
    old = breaker.acquire()
    trip(breaker, 2)
    clock.advance(10)
    breaker.call(lambda: None)  # closed again, a new epoch
    breaker.record_failure(connection_refused(), old)
    assert breaker.snapshot().failure_count == 0


def test_snapshot_has_what_the_admin_page_needs(make_breaker, clock, store_kind):
    breaker = make_breaker(failure_threshold=1, history_size=3)
    with pytest.raises(ConnectionRefusedError):
        breaker.call(fail(ConnectionRefusedError("connect to postgresql://u:hunter2@db/x")))
    snap = breaker.snapshot(history=True)
    assert snap.name == "db" and snap.public_state == "open"
    assert snap.last_error == "connect to postgresql://***@db/x"
    assert snap.last_error_type == "ConnectionRefusedError"
    assert snap.opened_at_dt.timestamp() == clock.time()
    assert snap.next_probe_at_dt.timestamp() == clock.time() + 10
    assert snap.store_kind == store_kind and snap.store_healthy
    data = snap.as_dict()
    assert data["state"] == "open" and data["transitions"][0]["to"] == "open"
    for _ in range(5):
        breaker.reset()
        breaker.force_open()
    assert len(breaker.snapshot(history=True).transitions) == 3  # bounded history


def test_signals_fire_with_names_and_states(make_breaker, clock):
    breaker = make_breaker(failure_threshold=1)
    seen = []

    def receiver(signal_name):
        return lambda sender, **kw: seen.append((signal_name, sender.name, kw.get("new")))

    receivers = {
        "state_changed": receiver("state_changed"),
        "call_rejected": receiver("call_rejected"),
        "call_failed": receiver("call_failed"),
        "call_succeeded": receiver("call_succeeded"),
    }
    for name, func in receivers.items():
        getattr(signals, name).connect(func, weak=False)
    try:
        breaker.call(lambda: None)
        trip(breaker, 1)
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)
    finally:
        for name, func in receivers.items():
            getattr(signals, name).disconnect(func)
    assert seen == [
        ("call_succeeded", "db", None),
        ("state_changed", "db", State.OPEN),
        ("call_failed", "db", None),
        ("call_rejected", "db", None),
    ]


def test_transitions_are_logged_as_json_events(make_breaker, clock, events):
    breaker = make_breaker(failure_threshold=1)
    trip(breaker, 1)
    clock.advance(10)
    breaker.call(lambda: None)
    changes = events.of("resilience.state_changed")
    assert [(c["from"], c["to"]) for c in changes] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert changes[0]["error"] == "[Errno 111] Connection refused"
    assert changes[0]["error_type"] == "ConnectionRefusedError"


def test_decorator_keeps_the_function_and_counts(make_breaker):
    breaker = make_breaker(failure_threshold=1)

    @breaker
    def add(a, b):
        """Adds."""
        return a + b

    assert add(1, 2) == 3
    assert add.__name__ == "add" and add.__doc__ == "Adds." and add.breaker is breaker


def test_context_manager_counts_and_reraises(make_breaker):
    breaker = make_breaker(failure_threshold=2)
    with breaker:
        pass
    for _ in range(2):
        with pytest.raises(ConnectionRefusedError), breaker:
            raise connection_refused()
    assert breaker.state is State.OPEN
    with pytest.raises(CircuitOpenError), breaker:
        pytest.fail("the body must not run when the breaker is open")


def test_nested_context_managers_of_two_breakers(make_breaker):
    outer, inner = make_breaker("outer", failure_threshold=1), make_breaker("inner")
    with pytest.raises(ConnectionRefusedError), outer, inner:
        raise connection_refused()
    assert outer.state is State.OPEN
    assert inner.snapshot().failure_count == 1


def test_async_call_decorator_and_context_manager(make_breaker, clock):
    breaker = make_breaker(failure_threshold=3)

    async def echo(value):
        await asyncio.sleep(0)
        return value

    decorated = breaker(echo)

    async def broken():
        await asyncio.sleep(0)
        raise connection_refused()

    async def scenario():
        assert await decorated("pong") == "pong"
        assert await breaker.call_async(echo, 2) == 2
        with pytest.raises(ConnectionRefusedError):
            await breaker.call_async(broken)
        with pytest.raises(ConnectionRefusedError):
            async with breaker:
                await broken()
        with pytest.raises(ConnectionRefusedError):
            await breaker(broken)()
        with pytest.raises(CircuitOpenError):
            await decorated("rejected")
        clock.advance(10)
        async with breaker:
            await asyncio.sleep(0)

    asyncio.run(scenario())
    assert breaker.state is State.CLOSED
    counters = breaker.snapshot().counters
    assert (counters["successes"], counters["failures"], counters["rejections"]) == (3, 3, 1)


def test_async_tasks_hold_their_own_permits(make_breaker, clock):
    breaker = make_breaker(failure_threshold=1)

    async def task(fails):
        async with breaker:
            await asyncio.sleep(0.01)
            if fails:
                raise connection_refused()

    async def scenario():
        return await asyncio.gather(task(False), task(True), task(False), return_exceptions=True)

    results = asyncio.run(scenario())
    assert [type(r).__name__ for r in results] == ["NoneType", "ConnectionRefusedError", "NoneType"]
    assert breaker.state is State.OPEN


def test_cancelled_task_does_not_count(make_breaker):
    breaker = make_breaker(failure_threshold=1)

    async def scenario():
        task = asyncio.ensure_future(breaker.call_async(asyncio.sleep, 10))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert breaker.state is State.CLOSED
    assert breaker.snapshot().counters["ignored"] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold is 0; it must be a whole number >= 1"),
        ({"recovery_timeout": -1}, "recovery_timeout is -1; it must be a positive number"),
        ({"recovery_timeout": float("nan")}, "recovery_timeout is nan; it must be a positive"),
        ({"half_open_max_calls": 0}, "half_open_max_calls is 0; it must be a whole number >= 1"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier is 0.5; it must be a number >= 1"),
        ({"failure_rate": 120}, r"failure_rate is 120; .* \(0, 100\]"),
        ({"window": 0.5}, "window is 0.5; it must be a whole number of seconds"),
        ({"record": ["no.such.Error"]}, "'no.such.Error' cannot be imported"),
        ({"ignore": [42]}, "42 is neither an exception class nor a callable"),
        ({"max_recovery_timeout": 5}, "MAX_RECOVERY_TIMEOUT.* is shorter than RECOVERY_TIMEOUT"),
    ],
)
def test_constructor_refuses_nonsense(make_breaker, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_breaker(**kwargs)


def test_two_timeouts_open_it_where_it_takes_five_refusals(make_breaker):
    """A timed-out call made someone wait the whole budget: it weighs more than a refusal."""
    breaker = make_breaker(failure_threshold=5, timeout_threshold=2)
    trip(breaker, 4)
    assert breaker.state is State.CLOSED  # four refusals: not yet
    breaker.reset()
    with pytest.raises(TimeoutError):
        breaker.call(fail(TimeoutError("timed out")))
    assert (breaker.state, breaker.snapshot().failure_count) == (State.CLOSED, 3)
    with pytest.raises(TimeoutError):
        breaker.call(fail(TimeoutError("timed out")))
    assert breaker.state is State.OPEN
    assert "a timeout counts 3" in breaker.snapshot().reason
