"""Threads hammering one breaker: exact counts, one probe at a time, no lock around calls."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache.backends.locmem import LocMemCache

from resilience.breaker import CircuitBreaker, Probe, State
from resilience.clock import FakeClock
from resilience.errors import CircuitOpenError
from resilience.stores import CacheStore

from .conftest import connection_refused, fail

THREADS = 8


def hammer(breaker: CircuitBreaker, calls: int, failure_rate: float, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    seen = {"ok": 0, "failed": 0, "rejected": 0}

    def broken():
        raise connection_refused()

    for _ in range(calls):
        try:
            breaker.call(broken if rng.random() < failure_rate else int)
            seen["ok"] += 1
        except ConnectionRefusedError:
            seen["failed"] += 1
        except CircuitOpenError:
            seen["rejected"] += 1
    return seen


def test_counters_are_exact_under_contention(make_breaker, clock):
    breaker = make_breaker(failure_threshold=4, recovery_timeout=0.001)
    calls = 3000

    def worker(seed):
        # The clock moves too, so the breaker keeps opening, probing and closing.
        clock.advance(0.0005)
        return hammer(breaker, calls, failure_rate=0.3, seed=seed)

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))
    total = {key: sum(r[key] for r in results) for key in ("ok", "failed", "rejected")}
    counters = breaker.snapshot().counters
    assert sum(total.values()) == THREADS * calls
    assert counters["successes"] == total["ok"]
    assert counters["failures"] == total["failed"]
    assert counters["rejections"] == total["rejected"]
    assert total["rejected"] > 0 and total["failed"] > 0  # it really opened under load


def concurrent_acquires(breakers, rounds_barrier):
    granted, refused = [], []
    lock = threading.Lock()

    def worker(breaker):
        rounds_barrier.wait()
        try:
            permit = breaker.acquire()
        except CircuitOpenError:
            with lock:
                refused.append(breaker)
            return
        with lock:
            granted.append(permit)

    threads = [threading.Thread(target=worker, args=(b,)) for b in breakers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return granted, refused


@pytest.mark.parametrize("max_calls", [1, 3])
def test_concurrent_half_open_admits_exactly_max_calls(make_breaker, clock, max_calls):
    for _ in range(10):
        breaker = make_breaker(failure_threshold=1, half_open_max_calls=max_calls)
        with pytest.raises(ConnectionRefusedError):
            breaker.call(fail())
        clock.advance(10)
        granted, refused = concurrent_acquires([breaker] * 16, threading.Barrier(16))
        assert len(granted) == max_calls
        assert all(isinstance(p, Probe) for p in granted)
        assert len(refused) == 16 - max_calls


def test_concurrent_probes_across_store_instances_share_the_limit(clock):
    cache = LocMemCache("resilience-threads", {"TIMEOUT": None})
    cache.clear()
    breakers = [
        CircuitBreaker(
            "questdb",
            failure_threshold=1,
            recovery_timeout=10,
            store=CacheStore(cache=cache, clock=clock),
            clock=clock,
        )
        for _ in range(8)
    ]
    breakers[0].record_failure(connection_refused(), breakers[0].acquire())
    clock.advance(10)
    granted, refused = concurrent_acquires(breakers * 2, threading.Barrier(16))
    assert len(granted) == 1 and len(refused) == 15


def test_no_lock_is_held_around_the_protected_call(make_breaker):
    breaker = make_breaker(failure_threshold=2)
    inside, release = threading.Event(), threading.Event()

    def slow():
        inside.set()
        assert release.wait(5)
        return "slow"

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(breaker.call, slow)
        assert inside.wait(5)
        # While a call is in flight, others run, fail and even trip the breaker.
        assert breaker.call(lambda: "fast") == "fast"
        for _ in range(2):
            with pytest.raises(ConnectionRefusedError):
                breaker.call(fail())
        assert breaker.state is State.OPEN
        assert not pending.done()
        release.set()
        assert pending.result(5) == "slow"


def test_operators_flipping_state_while_threads_call(make_breaker):
    breaker = make_breaker(failure_threshold=3, history_size=10)
    stop = threading.Event()
    errors = []

    def caller(seed):
        rng = random.Random(seed)
        while not stop.is_set():
            try:
                if rng.random() < 0.5:
                    breaker.call(int)
                else:
                    breaker.call(fail())
            except (CircuitOpenError, ConnectionRefusedError):
                pass
            except Exception as exc:  # anything else is a bug
                errors.append(exc)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for _ in range(200):
        breaker.force_open()
        breaker.force_closed()
        breaker.reset()
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    snap = breaker.snapshot(history=True)
    assert len(snap.transitions) <= 10
    assert snap.state in (State.CLOSED, State.OPEN)
    assert not snap.forced


def test_a_fork_while_another_thread_holds_the_locks_does_not_deadlock_the_child(make_breaker):
    breaker = make_breaker(failure_threshold=1)
    store = breaker.store
    held, release = threading.Event(), threading.Event()

    def hold_locks():
        with store._lock, breaker._events._lock:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold_locks)
    holder.start()
    assert held.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: the holder thread does not exist here
        code = 1
        try:
            breaker.force_open()
            code = 0 if breaker.state is State.OPEN else 2
        finally:
            os._exit(code)
    release.set()
    holder.join()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child deadlocked on a lock copied while held")
    assert os.waitstatus_to_exitcode(status) == 0
    assert breaker.state is State.CLOSED  # the parent is untouched


def test_threads_never_queue_behind_a_hung_store():
    """Sixteen threads call at once while the shared cache hangs: each pays one timeout at most.

    The first operations of all threads hang side by side; the first to fail
    marks the cache down, and every later operation gives up at once (one
    background retry, never a request, tries it again). Queued on a lock,
    the sixteenth thread would wait sixteen timeouts.
    """
    from testkit.simulated import Client, Memory, SkewedClock

    true = FakeClock()
    memory = Memory(true, burst=True, burst_hang=0.2)
    clock = SkewedClock(true, 0.0)
    store = CacheStore(cache=Client(memory), clock=clock, recover_inline=True)
    breaker = CircuitBreaker("hung", store=store, clock=clock, failure_threshold=1000)
    breaker.call(lambda: None)  # warm: it has read the shared state once
    memory.mode = "hang"
    true.advance(1.0)  # a refresh is due, and so is a retry of the cache
    barrier = threading.Barrier(16)
    spent: list[float] = []

    def caller() -> None:
        barrier.wait()
        started = time.monotonic()
        with contextlib.suppress(ConnectionRefusedError):
            breaker.call(fail())
        spent.append(time.monotonic() - started)

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert memory.hung >= 1
    assert max(spent) < 1.5 * memory.burst_hang, sorted(round(s, 3) for s in spent)
    assert breaker.snapshot().failure_count == 16  # all counted, here, while the cache is away
