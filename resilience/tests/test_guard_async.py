"""The async guard never holds the event loop while the shared store waits (issue 19, ASGI).

A breaker shared through a real Redis that is paused (SIGSTOP: it accepts and
answers nothing until the socket timeout) costs a call one bounded wait. In
async code that wait must happen in a thread: the event loop serves every
other request of the process meanwhile. A ticker on the same loop measures
the longest the loop was away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from django.core.cache.backends.redis import RedisCache

from resilience.breaker import CircuitBreaker, Probe
from resilience.errors import OperationFailed
from resilience.guard import Guard
from resilience.retry import RetryPolicy
from resilience.stores import CacheStore

from .conftest import store_of

SOCKET_TIMEOUT = 0.5  # what one wait on the paused Redis costs
TICK = 0.01


@pytest.fixture
def shared_breaker(redis_server) -> Iterator[CircuitBreaker]:
    """A breaker whose store is a real Redis, read before every call (sync interval 0)."""
    cache = RedisCache(
        redis_server.url,
        {"OPTIONS": {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": SOCKET_TIMEOUT}},
    )
    store = CacheStore(cache=cache, sync_interval=0, success_interval=0, recover_inline=True)
    breaker = CircuitBreaker(f"async-{time.monotonic_ns()}", store=store, failure_threshold=50)
    breaker.acquire()  # the connection pool is made and warm
    yield breaker


async def longest_pause_of_the_loop_while(calls) -> float:
    """Run ``calls`` while a ticker sleeps TICK at a time; the longest the loop was away."""
    longest = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal longest
        while not done.is_set():
            before = time.monotonic()
            await asyncio.sleep(TICK)
            longest = max(longest, time.monotonic() - before - TICK)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(TICK)
    try:
        await calls()
    finally:
        done.set()
        await ticking
    return longest


def test_a_paused_shared_store_never_holds_the_event_loop(shared_breaker, redis_server):
    guard = Guard("fetch", breaker=shared_breaker, retry=RetryPolicy(attempts=2, waits=(0.0,)))
    outcomes: list[str] = []

    async def answers() -> str:
        await asyncio.sleep(0)
        return "rows"

    async def refused() -> str:
        raise ConnectionRefusedError(111, "Connection refused")

    async def calls() -> None:
        for fn in (answers, refused, answers, refused):
            try:
                outcomes.append(await guard.call_async(fn))
            except OperationFailed as exc:
                outcomes.append(exc.error_type)

    with redis_server.paused():
        started = time.monotonic()
        longest = asyncio.run(longest_pause_of_the_loop_while(calls))
        took = time.monotonic() - started
    assert outcomes == ["rows", "ConnectionRefusedError"] * 2  # local state carries the calls
    assert took >= SOCKET_TIMEOUT  # the store was waited on...
    assert longest < 0.2, f"the event loop was held {longest:.2f} s"  # ...but not on the loop


def test_a_call_cancelled_while_its_probe_is_taken_gives_the_probe_back(clock):
    """The permit is taken in a thread; a caller cancelled meanwhile must not keep a probe
    that nobody will use, or the recovering dependency goes unprobed for a window."""
    breaker = CircuitBreaker(
        "cancelled", store=store_of("cache", clock), clock=clock, failure_threshold=1
    )
    assert breaker.store.shared
    breaker.record_failure(ConnectionRefusedError(), breaker.acquire())
    clock.advance(breaker.recovery_timeout)  # half-open: one probe

    async def never() -> str:
        await asyncio.sleep(60)
        return "late"

    async def cancel_at_once() -> None:
        task = asyncio.create_task(Guard("fetch", breaker=breaker).call_async(never))
        await asyncio.sleep(0)  # it waits on the thread that takes the probe
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.3)  # the thread has taken it, and given it back

    asyncio.run(cancel_at_once())
    assert isinstance(breaker.acquire(), Probe)  # the probe is there for the next caller
