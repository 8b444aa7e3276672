"""Last good copies when the cache misbehaves, and requests that wait on another's refresh."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache

from resilience.clock import FakeClock
from resilience.fallback import FAILED_PREFIX, LOCK_PREFIX, CachedFallback
from resilience.sharedcache import SharedCache

_names = itertools.count()


class GlitchyCache:
    """A real cache whose next ``failures`` reads time out, as a paused Redis's would."""

    def __init__(self) -> None:
        self.cache = LocMemCache(f"fallback-{next(_names)}", {"TIMEOUT": None})
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.cache, name)
        if name not in ("get", "get_many"):
            return target

        def read(*args: Any, **kwargs: Any) -> Any:
            if self.failures:
                self.failures -= 1
                raise TimeoutError("Timeout reading from 127.0.0.1:6379")
            return target(*args, **kwargs)

        return read


def query(cache: Any, loader: Any, clock: FakeClock | None = None, **kwargs: Any) -> CachedFallback:
    shared = SharedCache("fallback-test", cache=cache, clock=clock or FakeClock(),
                         recover_inline=True)  # fmt: skip
    kwargs.setdefault("fresh_for", 0)
    return CachedFallback("positions", loader, breaker_name="fallback-test",
                          runner=lambda op, fn: fn(), shared=shared, **kwargs)  # fmt: skip


def test_a_failed_read_never_lets_an_empty_answer_replace_the_copy():
    answers = [[{"sym": "BTC", "qty": 3}], []]
    cache = GlitchyCache()
    positions = query(cache, lambda: answers.pop(0))
    assert positions.get().data == [{"sym": "BTC", "qty": 3}]
    cache.failures = 1  # the next read of the copy times out; QuestDB answers []
    assert positions.refresh().data == []
    assert cache.cache.get("resilience:lastgood:positions")["data"] == [{"sym": "BTC", "qty": 3}]


def test_a_failed_read_still_serves_the_copy_when_questdb_is_down_too():
    answers: list[Any] = [[{"sym": "BTC", "qty": 3}], ConnectionRefusedError(111, "refused")]

    def loader() -> list:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    cache = GlitchyCache()
    positions = query(cache, loader)
    positions.get()
    cache.failures = 10  # reads keep timing out: the cache is down for this process
    envelope = positions.get()
    assert (envelope.status, envelope.data) == ("degraded", [{"sym": "BTC", "qty": 3}])
    assert envelope.reason.startswith("database_unavailable")


class HookedClock(FakeClock):
    """A fake clock that runs a hook whenever someone sleeps on it."""

    __slots__ = ("hook",)

    def sleep(self, seconds: float) -> None:
        self.hook()
        super().sleep(seconds)


def test_a_request_that_waited_on_a_failed_refresh_says_why_it_failed():
    cache = LocMemCache(f"fallback-{next(_names)}", {"TIMEOUT": None})
    clock = HookedClock()
    clock.hook = lambda: None
    positions = query(cache, lambda: [{"sym": "BTC"}], clock=clock, fresh_for=2)
    positions.refresh()
    clock.advance(5)  # the copy is no longer fresh
    cache.add(LOCK_PREFIX + "positions", "another-process", 10)
    reason = "database_unavailable: Failed to get_positions: connection refused"

    def the_other_process_fails() -> None:
        failure = {"reason": reason, "retry_after": None, "at": clock.time()}
        cache.set(FAILED_PREFIX + "positions", failure, 10)
        cache.delete(LOCK_PREFIX + "positions")

    clock.hook = the_other_process_fails  # it finishes while this request waits
    envelope = positions.get()
    assert envelope.status == "degraded"
    assert envelope.reason == reason  # not "refresh_in_progress"


def test_unlock_never_deletes_a_lock_that_may_be_another_processes():
    """Ours expired and another process took the lock. A read of the lock could still
    see our token (read just before it expired), so unlocking never trusts a read."""

    class StaleRead(LocMemCache):
        stale: Any = None

        def get(self, key: str, default: Any = None, version: Any = None) -> Any:
            if key.endswith(LOCK_PREFIX + "positions") and self.stale is not None:
                return self.stale
            return super().get(key, default, version)

    cache = StaleRead(f"fallback-{next(_names)}", {"TIMEOUT": None})
    clock = FakeClock()
    positions = query(cache, lambda: [{"sym": "BTC"}], clock=clock)
    lease = positions.flight.acquire()
    assert lease is not None and not lease.solo
    clock.advance(positions.lock_timeout)  # ours has expired; another process took it since
    cache.set(LOCK_PREFIX + "positions", "someone-else", 10)
    cache.stale = lease.token
    positions.flight.release(lease)
    cache.stale = None
    assert cache.get(LOCK_PREFIX + "positions") == "someone-else"


@pytest.mark.parametrize("offset", [600.0, -600.0])
def test_a_copy_from_a_skewed_host_is_never_fresh_when_it_is_not(offset):
    """Host A's clock is ten minutes off; host B reads A's copy on the shared clock."""
    cache = LocMemCache(f"fallback-{next(_names)}", {"TIMEOUT": None})

    class Reference:
        """The shared cache's clock (Redis TIME): the true one."""

        def __init__(self, cache: Any, true: FakeClock) -> None:
            self.cache, self.true = cache, true

        def __getattr__(self, name: str) -> Any:
            return getattr(self.cache, name)

        def reference_time(self) -> float:
            return self.true.time()

    true = FakeClock()
    skewed = FakeClock(start=true.time() + offset)
    host_a = query(Reference(cache, true), lambda: [{"read": "by A"}], clock=skewed, fresh_for=2)
    host_a.get()

    def questdb_down() -> list:
        raise ConnectionRefusedError(111, "refused")

    host_b = query(Reference(cache, true), questdb_down, clock=true, fresh_for=2)
    true.advance(3)
    skewed.advance(3)
    envelope = host_b.get()  # A's copy is 3 s old on every clock: not fresh, QuestDB is down
    assert envelope.status == "degraded"
    assert abs(envelope.cached_at.timestamp() - (true.time() - 3)) < 0.01  # on the true clock


class SharedClockCache:
    """A real cache whose ``reference_time`` (Redis TIME) reads ``true`` plus ``error``:
    what one process measures of the shared clock, a few milliseconds out."""

    def __init__(self, cache: Any, true: FakeClock, error: float = 0.0) -> None:
        self.cache, self.true, self.error = cache, true, error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cache, name)

    def reference_time(self) -> float:
        return self.true.time() + self.error


@pytest.mark.parametrize("error", [-0.005, 0.0, 0.005])
def test_a_waiter_takes_the_copy_stored_while_it_waited_whatever_the_clocks_small_errors(error):
    """Two processes measure the shared clock a few ms apart: a copy stored a moment ago may
    look a few ms "from the future" to the one that waited for it. It is fresh all the same."""
    cache = LocMemCache(f"fallback-{next(_names)}", {"TIMEOUT": None})

    class WokenClock(HookedClock):
        """The hook runs as the sleeper wakes: the refresher stores just before it looks."""

        def sleep(self, seconds: float) -> None:
            FakeClock.sleep(self, seconds)
            self.hook()

    waiter_clock = WokenClock()
    waiter_clock.hook = lambda: None
    waiter = query(SharedClockCache(cache, waiter_clock, error), lambda: [{"v": "waiter's"}],
                   clock=waiter_clock, fresh_for=2)  # fmt: skip
    refresher = query(SharedClockCache(cache, waiter_clock), lambda: [{"v": "new"}],
                      clock=waiter_clock, fresh_for=2)  # fmt: skip
    refresher.refresh()
    waiter_clock.advance(5)  # no longer fresh
    cache.add(LOCK_PREFIX + "positions", "the refresher's", 10)  # it is querying

    def the_refresher_finishes() -> None:
        if cache.get(LOCK_PREFIX + "positions") == "the refresher's":
            cache.delete(LOCK_PREFIX + "positions")
            refresher.refresh()

    waiter_clock.hook = the_refresher_finishes
    envelope = waiter.get()
    assert (envelope.status, envelope.reason, envelope.data) == ("ok", None, [{"v": "new"}])


def test_a_copy_stored_between_a_waiters_look_and_its_first_poll_is_fresh_for_it():
    """fresh_for 0 (every request reads): the refresher finishes just after this request
    read the old copy and failed to take the lock. Its copy was read after this request
    looked, so it answers this request, although it is older than the wait itself."""

    class Cache(LocMemCache):
        def add(self, key: str, *args: Any, **kwargs: Any) -> bool:
            added = super().add(key, *args, **kwargs)
            if not added and key.endswith(LOCK_PREFIX + "positions"):
                self.delete(LOCK_PREFIX + "positions")
                refresher.refresh()  # it stores its copy and lets go of the lock
                clock.advance(0.05)  # before this request's first look at the cache
            return added

    cache = Cache(f"fallback-{next(_names)}", {"TIMEOUT": None})
    clock = FakeClock()
    refresher = query(cache, lambda: [{"v": "new"}], clock=clock, fresh_for=0)
    waiter = query(cache, lambda: [{"v": "waiter's"}], clock=clock, fresh_for=0)
    waiter.refresh()
    clock.advance(1)
    cache.add(LOCK_PREFIX + "positions", "the refresher's", 10)
    envelope = waiter.get()
    assert (envelope.status, envelope.reason, envelope.data) == ("ok", None, [{"v": "new"}])


def test_a_waiter_that_found_the_refreshers_copy_already_refreshes_itself_not_an_old_failure():
    """fresh_for 0: this request read the copy the refresher had just stored, then bumped
    into its lock, which it let go of at once. Nothing newer will come from that refresh,
    and the failure noted before it is older than the copy: it says nothing about now."""
    cache = LocMemCache(f"fallback-{next(_names)}", {"TIMEOUT": None})
    clock = HookedClock()
    clock.hook = lambda: None
    waiter = query(cache, lambda: [{"v": "the waiter's own read"}], clock=clock, fresh_for=0)
    old = {"reason": "database_unavailable: long ago", "retry_after": 3, "at": clock.time()}
    cache.set(FAILED_PREFIX + "positions", old, 10)
    clock.advance(1)
    query(cache, lambda: [{"v": "the refresher's"}], clock=clock, fresh_for=0).refresh()
    cache.add(LOCK_PREFIX + "positions", "the refresher's, about to let go", 10)
    clock.hook = lambda: cache.delete(LOCK_PREFIX + "positions")
    envelope = waiter.get()
    assert (envelope.status, envelope.data) == ("ok", [{"v": "the waiter's own read"}])


def test_an_empty_answer_is_fresh_for_the_burst_and_stored_for_the_fleet():
    """QuestDB really answers "no rows": that answer serves the requests of the next
    ``fresh_for`` seconds without another query, and the copy other processes read says
    when it came, keeping the last rows that were not empty for an outage."""
    cache = LocMemCache(f"fallback-{next(_names)}", {"TIMEOUT": None})
    clock = FakeClock()
    answers: list[Any] = [[{"session": "S-1"}], [], []]
    calls = []

    def loader() -> Any:
        calls.append(clock.time())
        return answers.pop(0)

    sessions = query(cache, loader, clock=clock, fresh_for=2)
    assert sessions.get().data == [{"session": "S-1"}]
    clock.advance(3)
    empty = sessions.get()
    assert (empty.status, empty.data, empty.reason) == ("ok", [], None)
    clock.advance(1)
    again = sessions.get()  # within fresh_for of the empty answer: no query
    assert (again.status, again.data, len(calls)) == ("ok", [], 2)
    other = query(cache, lambda: [{"never": "asked"}], clock=clock, fresh_for=2)
    assert other.get().data == []  # the empty answer, fresh for another process too
    stored = cache.get("resilience:lastgood:positions")
    assert stored["data"] == [{"session": "S-1"}] and stored["empty"] == []
    assert stored["answered_at"].timestamp() == calls[1]
    assert stored["cached_at"].timestamp() == calls[0]


def test_after_an_empty_answer_an_outage_shows_the_older_rows_and_says_so():
    cache = LocMemCache(f"fallback-{next(_names)}", {"TIMEOUT": None})
    clock = FakeClock()
    answers: list[Any] = [{"book": {"AAPL": 3}}, {}, ConnectionRefusedError(111, "refused")]

    def loader() -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    books = query(cache, loader, clock=clock, dependency="service", dependency_label="The API")
    first = books.get()
    assert first.data == {"book": {"AAPL": 3}}  # any JSON value, kept as it is
    clock.advance(60)
    assert books.get().data == {}
    clock.advance(5)
    outage = books.get()
    assert (outage.status, outage.data) == ("degraded", {"book": {"AAPL": 3}})
    assert outage.cached_at == first.cached_at
    assert outage.reason.startswith("service_unavailable: [Errno 111] refused; The API's last ")
    assert outage.reason.endswith(
        ", had no rows: showing the rows from " + first.cached_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    )
    assert outage.unreachable


def test_while_the_breaker_refuses_a_process_looks_for_a_newer_copy_every_recheck(settings):
    """Open: this process serves the copy it holds without a round trip, and looks in the
    cache at most every RECHECK seconds, where another process's probe may have left a
    newer copy. Never looking would serve the old copy for the whole outage."""
    from resilience.fallback import RECHECK
    from resilience.registry import get_breaker

    class Counting(LocMemCache):
        reads = 0

        def get(self, *args: Any, **kwargs: Any) -> Any:
            self.reads += 1
            return super().get(*args, **kwargs)

    settings.RESILIENCE = {"STORE": "resilience.stores.LocalStore"}
    cache = Counting(f"fallback-{next(_names)}", {"TIMEOUT": None})
    clock = FakeClock()
    breaker = get_breaker("fallback-test")

    def process(answer: str) -> CachedFallback:
        shared = SharedCache("fallback-test", cache=cache, clock=clock, recover_inline=True)
        return CachedFallback("positions", lambda: [{"v": answer}], breaker_name=breaker.name,
                              runner=lambda op, fn: breaker.call(fn), shared=shared,
                              fresh_for=0)  # fmt: skip

    here, there = process("old"), process("new")
    here.get()
    breaker.force_open()
    try:
        clock.advance(RECHECK / 2)
        there.shared.run(
            lambda c: c.set(there.key, {"data": [{"v": "new"}], "cached_at": there._now()}, None)
        )
        # (another process's probe got through: a newer copy in the cache)
        reads = cache.reads
        held = here.get()
        assert (held.status, held.data, cache.reads) == ("degraded", [{"v": "old"}], reads)
        clock.advance(RECHECK)
        newer = here.get()
        assert (newer.status, newer.data) == ("degraded", [{"v": "new"}])
        assert cache.reads > reads
    finally:
        breaker.reset()


def test_an_empty_answer_never_stores_older_rows_or_none_over_the_fleets():
    """Process A's only answer was empty, read while the cache was away; the fleet's copy
    has rows. A's next empty answer keeps the fleet's rows (and says the answer is newer);
    and when the fleet has newer rows than A holds, A never stores its older ones."""
    cache = GlitchyCache()
    clock = FakeClock()
    fleet = query(cache, lambda: [{"id": 1}], clock=clock)
    fleet.get()
    lonely = query(cache, list, clock=clock)
    cache.failures = 1  # A's look at the copy times out: it holds only its empty answer
    assert lonely.refresh().data == []
    cache.cache.delete(LOCK_PREFIX + "positions")  # its unlock went the way of the cache
    clock.advance(1)
    assert lonely.refresh().data == []  # the cache is back: A merges, never stores []
    stored = cache.cache.get("resilience:lastgood:positions")
    assert stored["data"] == [{"id": 1}] and stored["empty"] == []
    assert stored["answered_at"].timestamp() == clock.time()

    answers = iter([[{"id": 3}], []])
    older = query(cache, lambda: next(answers), clock=clock)
    older.get()  # holds id 3
    clock.advance(1)
    fleet.loader = lambda: [{"id": 4}]
    fleet.refresh()  # the fleet's copy: id 4, newer rows than `older` holds
    clock.advance(1)
    assert older.refresh().data == []
    assert cache.cache.get("resilience:lastgood:positions")["data"] == [{"id": 4}]
