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

from resilience.breaker import CircuitBreaker
from resilience.errors import OperationFailed
from resilience.guard import Guard
from resilience.retry import RetryPolicy
from resilience.stores import CacheStore

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
