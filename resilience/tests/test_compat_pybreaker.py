"""resilience.compat.pybreaker: what pybreaker's README promises its users, on our breaker.

Written from pybreaker 1.4's documented behaviour (its README), not from its
test suite; the suite itself is run against this module from outside the
repository (README, "A home for pybreaker's users"). Times are a fake clock,
passed to the storages (``clock=`` is ours, not pybreaker's), so nothing sleeps.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

import resilience.compat.pybreaker as pybreaker
from resilience.clock import FakeClock

_namespaces = itertools.count()


class HTTPError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


def raises(exc: BaseException):
    def fail():
        raise exc

    return fail


@pytest.fixture
def make(clock):
    def build(**kwargs):
        kwargs.setdefault("state_storage", pybreaker.CircuitMemoryStorage("closed", clock=clock))
        return pybreaker.CircuitBreaker(**kwargs)

    return build


def fail_times(breaker, times: int) -> list[str]:
    """What each failing call raised, by class name."""
    seen = []
    for _ in range(times):
        try:
            breaker.call(raises(NotImplementedError()))
        except (NotImplementedError, pybreaker.CircuitBreakerError) as exc:
            seen.append(type(exc).__name__)
    return seen


def test_the_defaults_are_pybreakers(make):
    breaker = make()
    assert (breaker.fail_max, breaker.reset_timeout, breaker.success_threshold) == (5, 60, 1)
    assert (breaker.fail_counter, breaker.current_state) == (0, "closed")
    assert breaker.excluded_exceptions == () and breaker.listeners == ()
    assert breaker._state_storage.name == "memory"


def test_it_opens_after_fail_max_failures_and_the_tripping_call_raises_the_breakers_error(make):
    """ "the circuit breaker will automatically open the circuit after 5 consecutive failures";
    then calls "fail immediately (raising CircuitBreakerError)"."""
    breaker = make()
    assert fail_times(breaker, 5) == ["NotImplementedError"] * 4 + ["CircuitBreakerError"]
    assert (breaker.current_state, breaker.fail_counter) == ("open", 5)
    called = []
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(called.append, 1)
    assert called == []
    assert breaker.fail_counter == 5  # the failures that opened it are still counted


def test_throw_new_error_on_trip_false_raises_the_original_error(make):
    breaker = make(fail_max=2, throw_new_error_on_trip=False)
    assert fail_times(breaker, 2) == ["NotImplementedError", "NotImplementedError"]
    assert breaker.current_state == "open"


def test_the_error_on_trip_keeps_the_failure_as_its_cause(make):
    breaker = make(fail_max=1)
    with pytest.raises(pybreaker.CircuitBreakerError) as info:
        breaker.call(raises(NotImplementedError("disk on fire")))
    assert isinstance(info.value.__cause__, NotImplementedError)


def test_after_reset_timeout_one_call_decides(make, clock):
    """ "After 60 seconds, the circuit breaker will allow the next call ... If that call
    succeeds, the circuit is closed; if it fails ... opened again"."""
    breaker = make(fail_max=2, reset_timeout=60)
    fail_times(breaker, 2)
    clock.advance(60)
    assert fail_times(breaker, 1) == ["CircuitBreakerError"]  # the trial call failed
    assert (breaker.current_state, breaker.fail_counter) == ("open", 3)
    clock.advance(60)
    assert breaker.call(lambda: "back")
    assert (breaker.current_state, breaker.fail_counter) == ("closed", 0)


def test_success_threshold_successes_close_it_and_a_failure_reopens(make, clock):
    """ "Require 3 successful requests before closing"."""
    breaker = make(fail_max=1, reset_timeout=10, success_threshold=3)
    fail_times(breaker, 1)
    clock.advance(10)
    for expected in (1, 2):
        breaker.call(lambda: True)
        assert (breaker.current_state, breaker.success_counter) == ("half-open", expected)
    breaker.call(lambda: True)
    assert (breaker.current_state, breaker.success_counter) == ("closed", 0)
    fail_times(breaker, 1)
    clock.advance(10)
    breaker.call(lambda: True)
    assert fail_times(breaker, 1) == ["CircuitBreakerError"]
    assert (breaker.current_state, breaker.success_counter) == ("open", 0)


def test_excluded_exceptions_by_type_or_callable_are_not_failures(make):
    """ "exclude=[lambda e: type(e) == HTTPError and e.status_code < 500]"."""
    breaker = make(
        exclude=[LookupError, lambda e: isinstance(e, HTTPError) and e.status_code < 500]
    )
    fail_times(breaker, 1)
    with pytest.raises(KeyError):  # a subclass of an excluded type
        breaker.call(raises(KeyError("k")))
    assert breaker.fail_counter == 0  # excluded: the service answered, a success
    with pytest.raises(HTTPError):
        breaker.call(raises(HTTPError(404)))
    assert breaker.fail_counter == 0
    with pytest.raises(HTTPError):
        breaker.call(raises(HTTPError(503)))
    assert breaker.fail_counter == 1
    breaker.add_excluded_exceptions(NotImplementedError)
    fail_times(breaker, 1)
    assert breaker.fail_counter == 0
    breaker.remove_excluded_exception(NotImplementedError)
    assert breaker.excluded_exceptions[0] is LookupError and len(breaker.excluded_exceptions) == 2


class Recorder(pybreaker.CircuitBreakerListener):
    def __init__(self) -> None:
        self.out: list[str] = []

    def before_call(self, cb, func, *args, **kwargs):
        self.out.append("before")

    def success(self, cb):
        self.out.append("success")

    def failure(self, cb, exc):
        self.out.append(f"failure {type(exc).__name__}")

    def state_change(self, cb, old_state, new_state):
        self.out.append(f"{old_state.name}->{new_state.name}")


def test_listeners_hear_calls_and_every_transition(make, clock):
    recorder = Recorder()
    breaker = make(fail_max=1, reset_timeout=10, listeners=[recorder])
    breaker.call(lambda: 1)
    fail_times(breaker, 1)
    clock.advance(10)
    breaker.call(lambda: 1)
    breaker.open()
    breaker.half_open()
    breaker.close()
    assert recorder.out == [
        "before", "success",
        "before", "closed->open", "failure NotImplementedError",
        "open->half-open", "before", "half-open->closed", "success",
        "closed->open", "open->half-open", "half-open->closed",
    ]  # fmt: skip
    other = pybreaker.CircuitBreakerListener()
    breaker.add_listener(other)
    breaker.remove_listener(recorder)
    assert breaker.listeners == (other,)


def test_the_decorator_keeps_the_function_and_follows_generators(make):
    breaker = make()

    @breaker
    def rows(value):
        "Docstring"
        yield value
        yield value + 1

    @breaker
    def broken(value):
        yield value
        raise NotImplementedError

    assert (rows.__name__, rows.__doc__) == ("rows", "Docstring")
    gen = broken(1)
    assert next(gen) == 1
    assert breaker.fail_counter == 0  # the outcome is known when the generator ends
    with pytest.raises(NotImplementedError):
        next(gen)
    assert breaker.fail_counter == 1
    assert list(rows(1)) == [1, 2]
    assert breaker.fail_counter == 0


def test_calling_as_a_context_manager(make):
    breaker = make(fail_max=2)
    with breaker.calling():
        pass
    with pytest.raises(NotImplementedError), breaker.calling():
        raise NotImplementedError
    with pytest.raises(pybreaker.CircuitBreakerError), breaker.calling():
        raise NotImplementedError  # the second: it opens the breaker
    assert breaker.current_state == "open"
    with pytest.raises(pybreaker.CircuitBreakerError), breaker.calling():
        raise AssertionError("not run: the breaker is open")


def test_call_async_and_decorated_coroutines(make):
    breaker = make(fail_max=2)

    @breaker
    async def refused():
        raise ConnectionRefusedError(111, "refused")

    @breaker(__pybreaker_call_async=True)
    async def answer(value):
        return value

    async def scenario():
        assert await breaker.call_async(answer, 7) == 7
        with pytest.raises(ConnectionRefusedError):
            await refused()
        assert breaker.fail_counter == 1  # counted when it ran, not when it was created
        with pytest.raises(pybreaker.CircuitBreakerError):
            await refused()

    asyncio.run(scenario())
    assert breaker.current_state == "open"


def test_settings_can_change_on_a_live_breaker(make):
    breaker = make(name="db")
    breaker.fail_max, breaker.reset_timeout, breaker.success_threshold = 2, 5, 2
    breaker.name = "database"
    assert (breaker.fail_max, breaker.reset_timeout, breaker.success_threshold) == (2, 5, 2)
    assert breaker.name == "database"
    fail_times(breaker, 2)
    assert breaker.current_state == "open"
    assert breaker.breaker.snapshot().next_probe_at - breaker.breaker.snapshot().opened_at == 5


@pytest.mark.parametrize("state", ["open", "half-open", "closed"])
def test_a_storage_says_where_a_new_breaker_starts(state, clock):
    breaker = pybreaker.CircuitBreaker(
        state_storage=pybreaker.CircuitMemoryStorage(state, clock=clock)
    )
    assert breaker.state.name == breaker.current_state == state


def test_an_unknown_state_is_refused():
    with pytest.raises(ValueError, match="Unknown state 'ajar'"):
        pybreaker.CircuitMemoryStorage("ajar")


@pytest.fixture
def redis_client(redis_url):
    import redis

    return redis.Redis.from_url(redis_url)


def redis_breaker(client, namespace, clock, **kwargs):
    storage = pybreaker.CircuitRedisStorage(
        pybreaker.STATE_CLOSED, client, namespace=namespace, clock=clock
    )
    return pybreaker.CircuitBreaker(state_storage=storage, name="db", **kwargs)


def test_redis_storage_is_the_fleets_shared_store(redis_client):
    """One import changed, and a fleet gets the shared store's correctness: a trip is seen by
    every process, a process that starts does not reset it, probes are counted fleet-wide."""
    clock = FakeClock()
    namespace = f"compat{next(_namespaces)}"
    web, worker = (
        redis_breaker(redis_client, namespace, clock, fail_max=3, reset_timeout=10)
        for _ in range(2)
    )
    fail_times(web, 2)
    fail_times(worker, 1)  # the third consecutive failure, fleet-wide
    clock.advance(0.5)
    assert web.current_state == "open"
    late = redis_breaker(redis_client, namespace, clock, fail_max=3, reset_timeout=10)
    assert late.current_state == "open"  # starting closed did not reset the fleet's state
    clock.advance(10)
    probe = web.breaker.acquire()
    with pytest.raises(pybreaker.CircuitBreakerError):
        worker.call(lambda: "a second probe in one window")
    web.breaker.record_success(probe)
    clock.advance(0.5)
    assert worker.current_state == late.current_state == "closed"
    keys = {key.decode() for key in redis_client.keys(f"{namespace}:pybreaker:db:*")}
    assert keys and all(key.startswith(f"{namespace}:pybreaker:db:") for key in keys)
