"""CacheStore in one process: several stores on one cache stand for several processes.

The cache is Django's local-memory cache behind a wrapper that counts
operations and can be made to fail like a Redis that went away. The real
multi-process tests against redis-server are in test_redis_processes.py.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache

from resilience.breaker import CircuitBreaker, Probe, State
from resilience.clock import FakeClock
from resilience.errors import CircuitOpenError
from resilience.state import Record
from resilience.stores import CacheStore

from .conftest import connection_refused, fail, outcomes

_names = itertools.count()


class FlakyCache:
    """A real cache that counts calls and raises ConnectionError while ``down``."""

    def __init__(self, cache: Any) -> None:
        self._cache = cache
        self.down = False
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._cache, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if self.down:
                raise ConnectionError("Error 111 connecting to redis://:s3cret@127.0.0.1:6399")
            return target(*args, **kwargs)

        return call


@pytest.fixture
def shared() -> LocMemCache:
    cache = LocMemCache(f"resilience-test-{next(_names)}", {"TIMEOUT": None})
    cache.clear()
    return cache


@pytest.fixture
def process(shared, clock):
    """Make one 'process': its own CacheStore (mirror, outage state) over the shared cache."""

    def make(*, name: str = "questdb", clock: FakeClock = clock, **kwargs: Any) -> CircuitBreaker:
        handle = FlakyCache(shared)
        store = CacheStore(cache=handle, clock=clock, sync_interval=0.5, outage_retry_interval=1.0,
                           recover_inline=True)  # fmt: skip
        kwargs.setdefault("failure_threshold", 3)
        kwargs.setdefault("recovery_timeout", 10.0)
        return CircuitBreaker(name, store=store, clock=clock, **kwargs)

    return make


def handle(breaker: CircuitBreaker) -> FlakyCache:
    """The process's own handle on the shared cache (to count calls, or break it)."""
    return breaker.store.shared_cache._override


def trip(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(ConnectionRefusedError):
            breaker.call(fail())


def test_failures_add_up_across_processes(process):
    a, b = process(), process()
    trip(a, 2)
    trip(b, 1)
    assert b.state is State.OPEN
    assert a.snapshot().failure_count in (0, 2)  # a has not refreshed yet, or sees the new epoch


def test_other_processes_converge_within_one_sync_interval(process, clock):
    a, b = process(), process()
    assert b.call(lambda: "warm") == "warm"
    trip(a, 3)
    assert b.call(lambda: "stale but allowed") == "stale but allowed"
    clock.advance(0.5)
    with pytest.raises(CircuitOpenError):
        b.call(lambda: None)
    transition = b.snapshot(history=True).transitions[-1]  # the history is the shared one
    assert transition.to_state == "open"
    assert transition.reason.startswith("3 consecutive failures (threshold 3")


@pytest.mark.parametrize(
    ("rules", "each_look"),
    [
        # One look at the shared state per sync interval, one success told per success interval.
        ({}, [["get_many", "set"]]),
        # The window rules add the calls sent (an add; an incr after it when another send
        # reached that second first) and the window read.
        (
            {"failure_rate": 50, "slow_call_rate": 50},
            [
                ["add", "get_many", "get_many", "set"],
                ["add", "get_many", "get_many", "incr", "set"],
            ],
        ),
    ],
)
def test_closed_path_does_not_touch_the_cache_between_refreshes(process, clock, rules, each_look):
    breaker = process(**rules)
    breaker.call(lambda: None)
    clock.advance(0.5)
    breaker.call(lambda: None)
    handle(breaker).calls.clear()
    for _ in range(1000):
        breaker.call(lambda: None)
    assert handle(breaker).calls == []
    clock.advance(0.5)
    for _ in range(1000):
        breaker.call(lambda: None)
    assert sorted(handle(breaker).calls) in each_look


def test_a_starting_process_never_resets_shared_state(process, shared):
    a = process()
    trip(a, 3)
    before = dict(shared._cache)
    late = process()
    assert late.state is State.OPEN
    with pytest.raises(CircuitOpenError):
        late.call(lambda: None)
    assert dict(shared._cache) == before  # it only read


def test_partial_failure_count_survives_a_new_process(process):
    trip(process(), 2)
    newcomer = process()
    assert newcomer.snapshot().failure_count == 2
    trip(newcomer, 1)
    assert newcomer.state is State.OPEN


def test_one_probe_per_window_across_processes(process, clock):
    fleet = [process() for _ in range(4)]
    trip(fleet[0], 3)
    clock.advance(10)
    granted = []
    for breaker in fleet * 2:
        try:
            granted.append(breaker.acquire())
        except CircuitOpenError as exc:
            assert exc.reason == "half_open"
    assert len(granted) == 1 and isinstance(granted[0], Probe)
    clock.advance(10)  # the probe hung: the next window allows one more
    more = []
    for breaker in fleet:
        with contextlib.suppress(CircuitOpenError):
            more.append(breaker.acquire())
    assert len(more) == 1


def test_half_open_max_calls_is_a_fleet_wide_limit(process, clock):
    fleet = [process(half_open_max_calls=2) for _ in range(3)]
    trip(fleet[0], 3)
    clock.advance(10)
    granted = 0
    for breaker in fleet * 2:
        try:
            breaker.acquire()
            granted += 1
        except CircuitOpenError:
            pass
    assert granted == 2


def test_a_probe_success_in_one_process_closes_it_for_all(process, clock):
    a, b = process(), process()
    trip(a, 3)
    clock.advance(10)
    assert b.call(lambda: "probe") == "probe"
    clock.advance(0.5)
    assert a.call(lambda: "closed again") == "closed again"
    assert a.state is State.CLOSED


def test_racing_trips_agree_on_one_opened_at(process, clock, shared):
    a, b = process(), process()
    trip(a, 2)
    clock.advance(0.5)
    pa, pb = a.acquire(), b.acquire()
    a.record_failure(connection_refused(), pa)  # count 3: a opens epoch 1
    clock.advance(1)
    b.record_failure(connection_refused(), pb)  # b's epoch 0 permit: stale, adopts
    sa, sb = a.snapshot(), b.snapshot()
    assert sa.epoch == sb.epoch == 1
    assert sa.opened_at == sb.opened_at


def test_opened_at_never_moves_backwards_even_with_a_slow_clock(process, clock):
    fast = process()
    slow_clock = FakeClock(start=clock.time() - 5)
    slow = process(clock=slow_clock)
    trip(fast, 3)
    first = fast.snapshot().opened_at
    slow_clock.advance(15)  # slow thinks it is 10 s after fast's trip, really 5 s early
    clock.advance(15)
    with pytest.raises(ConnectionRefusedError):
        slow.call(fail())  # a failed probe reopens, with slow's earlier clock
    clock.advance(0.5)
    assert fast.snapshot().opened_at >= first
    assert slow.snapshot().opened_at >= first


def test_manual_force_open_reaches_every_process(process, clock):
    a, b = process(), process()
    b.call(lambda: None)
    a.force_open()
    clock.advance(0.5)
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: None)
    assert info.value.reason == "forced_open"
    b.reset()
    clock.advance(0.5)
    assert a.call(lambda: 1) == 1


def test_cache_outage_goes_local_logs_once_and_publishes_on_return(process, clock, events):
    a = process()
    a.call(lambda: None)
    handle(a).down = True
    trip(a, 3)  # counted and opened locally
    assert a.state is State.OPEN
    assert not a.snapshot().store_healthy
    for _ in range(20):
        with pytest.raises(CircuitOpenError):
            a.call(lambda: None)
        clock.advance(0.3)
    down = events.of("resilience.cache_unavailable")
    assert len(down) == 1
    assert down[0]["error_type"] == "ConnectionError"
    assert "s3cret" not in down[0]["error"]
    handle(a).down = False
    clock.advance(1.0)
    a.state  # noqa: B018 - reading the state is what brings the store back
    assert a.snapshot().store_healthy
    assert len(events.of("resilience.cache_recovered")) == 1
    newcomer = process()
    assert newcomer.state in (State.OPEN, State.HALF_OPEN)
    assert newcomer.snapshot().opened_at == a.snapshot().opened_at


def test_while_away_others_moved_on_so_the_returning_process_adopts(process, clock):
    a, b = process(), process()
    a.call(lambda: None)
    handle(a).down = True
    clock.advance(1)
    trip(b, 3)  # b reaches the cache: open, shared
    handle(a).down = False
    clock.advance(1)
    with pytest.raises(CircuitOpenError):
        a.call(lambda: None)
    assert a.snapshot().epoch == b.snapshot().epoch


def test_newest_decision_wins_when_both_sides_changed(process, clock):
    a, b = process(), process()
    a.call(lambda: None)
    b.call(lambda: None)
    trip(b, 3)  # shared: open at t0
    handle(a).down = True
    clock.advance(1)
    a.force_open("operator, during the outage")  # local only, later than b's trip
    handle(a).down = False
    clock.advance(1)
    a.state  # noqa: B018 - triggers the resync
    clock.advance(0.5)
    assert b.forced and b.snapshot().reason == "operator, during the outage"


def test_a_flushed_cache_is_repopulated_by_the_processes_that_knew(process, clock, shared):
    a = process()
    trip(a, 3)
    shared.clear()  # Redis restarted empty
    clock.advance(0.5)
    a.state  # noqa: B018 - a refresh notices the loss and republishes
    late = process()
    assert late.state is State.OPEN


def test_store_options_from_settings_names(settings):
    store = CacheStore.from_options(
        {"CACHE_ALIAS": "other", "SYNC_INTERVAL": 0.25, "KEY_PREFIX": "x", "UNKNOWN": 1}
    )
    assert (store.cache_alias, store.sync_interval, store.key_prefix) == ("other", 0.25, "x")


def test_outage_logging_does_not_spam_on_every_operation(process, clock, caplog):
    caplog.set_level(logging.WARNING, logger="resilience")
    breaker = process(failure_threshold=1000)
    breaker.call(lambda: None)
    handle(breaker).down = True
    for _ in range(50):
        with pytest.raises(ConnectionRefusedError):
            breaker.call(fail())
    warnings = [r for r in caplog.records if "cache_unavailable" in r.getMessage()]
    assert len(warnings) == 1
    assert breaker.snapshot().failure_count == 50


@pytest.fixture(params=["locmem", "filebased", "redis"])
def any_cache(request, tmp_path):
    """The same scenario over several of Django's cache backends."""
    from django.core.cache.backends.filebased import FileBasedCache
    from django.core.cache.backends.redis import RedisCache

    if request.param == "locmem":
        cache = LocMemCache(f"resilience-any-{next(_names)}", {})
    elif request.param == "filebased":
        cache = FileBasedCache(str(tmp_path / "cache"), {})
    else:
        cache = RedisCache(request.getfixturevalue("redis_url"), {})
    cache.clear()
    return cache


def test_the_protocol_works_on_django_cache_backends(any_cache, clock):
    def process():
        store = CacheStore(cache=any_cache, clock=clock)
        return CircuitBreaker(
            "compat", failure_threshold=2, recovery_timeout=5, store=store, clock=clock
        )

    a, b = process(), process()
    trip(a, 1)
    trip(b, 1)
    assert b.state is State.OPEN
    assert process().state is State.OPEN  # a newcomer reads it
    clock.advance(5)
    probe = a.acquire()
    with pytest.raises(CircuitOpenError):
        b.acquire()
    a.record_success(probe)
    clock.advance(0.5)
    assert b.call(lambda: "closed") == "closed"
    assert b.snapshot().epoch == 2


def test_records_expire_but_the_epoch_pointer_does_not(redis_url, clock):
    import redis
    from django.core.cache.backends.redis import RedisCache

    cache = RedisCache(redis_url, {"KEY_PREFIX": f"ttl{next(_names)}"})
    breaker = CircuitBreaker(
        "ttl", failure_threshold=1, store=CacheStore(cache=cache, clock=clock), clock=clock
    )
    trip(breaker, 1)
    client = redis.Redis.from_url(redis_url)
    keys = {key.decode(): client.ttl(key) for key in client.keys("*ttl*:resilience:ttl:*")}
    pointer = [ttl for key, ttl in keys.items() if key.endswith(":epoch")]
    records = [ttl for key, ttl in keys.items() if ":rec:" in key]
    assert pointer == [-1]  # no expiry: the hint of where to look
    assert records == [-1]  # the newest decision never expires (a forced state must last)
    breaker.reset()
    keys = {key.decode(): client.ttl(key) for key in client.keys("*ttl*:resilience:ttl:rec:*")}
    by_epoch = sorted((int(key.rsplit(":", 1)[1]), ttl) for key, ttl in keys.items())
    assert by_epoch[-1][1] == -1
    assert all(0 < ttl <= 7 * 24 * 3600 for _, ttl in by_epoch[:-1])  # older ones do


def test_a_decision_is_never_published_on_top_of_another_history(process, clock, shared):
    """Issue 17: a process whose view predates a flush holds decision A1; the store now holds
    another process's B1 under the same epoch. A's successor names A1 as its parent, so it
    must not be written above B1 (that would undo B's trip with a decision that never saw it):
    the store's record below is checked, not only for being there."""
    a, b = process(), process()
    trip(a, 3)
    clock.advance(10)
    probe = a.acquire()  # a probes its own open A1
    assert isinstance(probe, Probe)
    shared.clear()  # Redis restarted empty
    trip(b, 3)  # b knows nothing of A1: its own open B1 is epoch 1 now
    opened_by_b = b.record
    a.record_success(probe)  # a's probe succeeded: "closed", on top of A1
    head = Record.from_wire(shared.get(f"resilience:questdb:rec:{opened_by_b.epoch + 1}"))
    assert head is None or head.parent == opened_by_b.uid, (
        f"{head} was published on top of {opened_by_b}, whose uid is not its parent"
    )
    clock.advance(0.5)
    assert b.state is State.OPEN  # b's trip stands
    assert a.record.uid == opened_by_b.uid  # and a adopted it


def test_the_window_adds_up_every_process_s_calls(process, clock):
    """Issue 20: four workers each seeing a quarter of the evidence open it together."""
    rules = {"failure_threshold": None, "failure_rate": 50, "window": 10, "minimum_calls": 8}
    a, b = process(**rules), process(**rules)
    outcomes(a, ".x.x")
    outcomes(b, ".x.")
    assert a.state is State.CLOSED and b.state is State.CLOSED  # 7 calls in all: too few
    clock.advance(0.5)
    a.state  # noqa: B018 - a's look sends its calls
    with pytest.raises(ConnectionRefusedError):
        b.call(fail())  # 8 calls, 4 failed, across the two
    assert b.record.state is State.OPEN
    assert "across the fleet (4 of 8 calls failed" in b.snapshot().reason


def test_while_anyone_fails_every_success_is_told_at_once(process, clock):
    """Issue 20: "consecutive" at any rate. b fails, a succeeds, b fails... a fleet-wide run
    never passes 1, so a threshold of 3 must never open; before, a's successes reached the
    store at most every SUCCESS_INTERVAL and b's failures were counted as one run."""
    a, b = process(), process()
    a.call(lambda: "a first look: nobody has failed")
    trip(b, 1)
    clock.advance(0.5)  # a's next look sees that somebody failed
    for _ in range(5):
        a.call(lambda: "ok")
        trip(b, 1)
    assert b.record.state is State.CLOSED
    assert b.snapshot().failure_count == 1
    clock.advance(1.0)  # two looks without a failure anywhere: quiet again
    a.call(lambda: None)
    clock.advance(0.5)
    a.call(lambda: None)
    handle(a).calls.clear()
    for _ in range(100):
        a.call(lambda: None)
    assert handle(a).calls == []  # no I/O on the closed path while nobody fails
