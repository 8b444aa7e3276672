"""The fleet's figures: several processes publish to one shared cache, any of them reads the sum.

Here several ``Channel``s with their own identities stand for processes on
one local-memory cache and a fake clock (as test_cache_store.py does for the
state); test_redis_processes.py runs real processes on a real Redis.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache

from resilience import fleet
from resilience.breaker import CircuitBreaker
from resilience.clock import FakeClock
from resilience.errors import CircuitOpenError
from resilience.process import Identity, detect_role
from resilience.state import Record, State
from resilience.stores import CacheStore, LocalStore

from .conftest import fail
from .test_cache_store import FlakyCache


class KeyedCache(FlakyCache):
    """A FlakyCache that also notes which fleet keys each write touched."""

    def __init__(self, cache: Any) -> None:
        super().__init__(cache)
        self.fleet_writes: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        call = super().__getattr__(name)

        def noted(*args: Any, **kwargs: Any) -> Any:
            if name in ("set", "add") and args and ":fleet:" in str(args[0]):
                self.fleet_writes.append((name, str(args[0]).split(":")[2]))
            return call(*args, **kwargs)

        return noted


_names = itertools.count()
START = 1_700_000_040.0  # a minute boundary + 0 s: buckets line up with the tests' steps


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def shared() -> LocMemCache:
    cache = LocMemCache(f"fleet-test-{next(_names)}", {"TIMEOUT": None, "MAX_ENTRIES": 100_000})
    cache.clear()
    return cache


class Process:
    """One simulated process: its own store, breaker, identity and fleet channel."""

    def __init__(self, shared: Any, clock: FakeClock, number: int, role: str = "web") -> None:
        self.handle = KeyedCache(shared)
        self.store = CacheStore(cache=self.handle, clock=clock, sync_interval=0.5)
        self.breaker = CircuitBreaker(
            "questdb", store=self.store, clock=clock, failure_threshold=3, recovery_timeout=10
        )
        self.me = Identity(f"id{number}", "host-a", 1000 + number, role)
        self.channel = fleet.Channel(self.store, me=self.me)
        self.channel.add(self.breaker)

    def succeed(self, times: int = 1) -> None:
        for _ in range(times):
            self.breaker.call(lambda: None)

    def fail(self, times: int = 1) -> None:
        for _ in range(times):
            with pytest.raises((ConnectionRefusedError, CircuitOpenError)):
                self.breaker.call(fail())

    def view(self, **kwargs: Any) -> fleet.FleetView:
        return fleet.fleet_view(self.breaker, channel=self.channel, timeout=15.0, **kwargs)


@pytest.fixture
def process(shared, clock):
    numbers = itertools.count(1)
    return lambda role="web": Process(shared, clock, next(numbers), role)


def test_windows_add_up_every_process_and_roll(process, clock):
    a, b, reader = process(), process("celery"), process()
    a.succeed(3)
    a.fail(2)
    b.succeed(5)
    for p in (a, b):
        p.channel.publish()
    view = reader.view()
    ten = view.window(10)
    assert (ten.success, ten.failure, ten.rejected, ten.ignored) == (8, 2, 0, 0)
    assert ten.error_rate == 20.0
    assert {p.actor for p in view.processes} == {"web pid 1001@host-a", "celery pid 1002@host-a"}
    assert view.scope == "2 processes sharing the store"  # the reader never published

    clock.advance(30)
    view = reader.view()
    assert view.window(10).calls == 0  # rolled out of 10 s
    assert view.window(60).success == 8 and view.window(600).failure == 2

    clock.advance(600)
    view = reader.view()
    assert view.window(600).calls == 0
    assert sum(m.calls for m in view.minutes) == 10  # still on the hour's timeline


def test_the_straddling_bucket_counts_in_proportion(process, clock):
    a = process()
    clock.advance(2)
    a.succeed(10)  # filed in the bucket [0 s, 5 s) of the minute
    a.channel.publish()
    clock.advance(10.5)  # window [2.5 s, 12.5 s): half of that bucket
    assert a.view().window(10).success == 5


def test_rejections_are_counted_while_open(process, clock):
    a = process()
    a.fail(3)
    a.fail(4)  # refused: the breaker is open
    a.channel.publish()
    ten = a.view().window(10)
    assert (ten.failure, ten.rejected) == (3, 4)
    assert ten.error_rate == 100.0  # of the calls that reached the dependency


def test_latency_percentiles_over_the_last_minute(process, clock):
    a = process()
    for _ in range(98):
        a.breaker.note_latency(0.003)  # the 2.5-5 ms bin
    a.breaker.note_latency(0.7)
    a.breaker.note_latency(0.8)  # the 0.5-1 s bin
    a.channel.publish()
    view = a.view()
    assert view.timed_calls == 100
    assert 0.0025 < view.p50 <= 0.005
    assert 0.5 < view.p99 <= 1.0
    clock.advance(70)
    assert a.view().p50 is None  # a minute later: no timed calls in the window


def test_one_write_per_interval_and_a_heartbeat_when_idle(process, clock):
    a = process()
    a.succeed()
    assert a.channel.publish()  # signs the roster and writes
    assert a.handle.fleet_writes == [("add", "roster"), ("set", "figures")]
    a.handle.fleet_writes.clear()
    for _ in range(3):
        a.succeed(50)
        clock.advance(1)
        assert a.channel.publish()
    assert a.handle.fleet_writes == [("set", "figures")] * 3
    a.handle.fleet_writes.clear()
    a.handle.calls.clear()
    for _ in range(4):  # idle: nothing to tell until the heartbeat is due
        clock.advance(1)
        assert not a.channel.publish()
    assert not a.handle.calls  # no I/O at all
    clock.advance(1)
    assert a.channel.publish()
    assert a.handle.fleet_writes == [("set", "figures")]


def test_calls_do_no_fleet_io(process, clock):
    a = process()
    a.succeed()
    a.channel.publish()
    a.handle.calls.clear()
    a.succeed(1000)  # the closed path, with a view of the store that is not due for a refresh
    assert a.handle.calls == []


def test_a_process_that_stops_reporting_drops_off_but_its_calls_still_count(process, clock):
    a, b, reader = process(), process(), process()
    a.succeed(4)
    b.succeed(6)
    for p in (a, b):
        p.channel.publish()
    clock.advance(10)
    a.channel.publish()  # b has died
    view = reader.view()
    assert [p.pid for p in view.processes] == [a.me.pid, b.me.pid]
    clock.advance(10)  # b silent for 20 s > 15 s
    a.channel.publish(force=True)
    view = reader.view()
    assert [p.pid for p in view.processes] == [a.me.pid]
    assert view.window(60).success == 10  # b's calls were real calls


def test_the_roster_finds_many_processes_signing_at_once(process, clock):
    crowd = [process() for _ in range(12)]
    for p in crowd:
        p.succeed()
        p.channel.publish()
    reader = process()
    view = reader.view()
    assert len(view.processes) == 12
    assert view.window(10).success == 12
    slots = sorted(slot for p in crowd for slot in p.channel._signed.values())
    assert slots == list(range(1, 13))  # atomic adds: one owner per slot, no gaps


def test_a_lost_answer_to_a_sign_is_counted_once(process, clock, shared):
    a = process()
    a.succeed()
    a.channel.publish()
    a.channel._signed.clear()  # as if the add's answer never came: it signs again
    clock.advance(1)
    a.succeed()
    a.channel.publish()
    view = process().view()
    assert len(view.processes) == 1 and view.window(10).success == 2


def test_a_flushed_cache_loses_the_roster_for_a_minute_at_most(process, clock, shared):
    a = process()
    a.succeed()
    a.channel.publish()
    shared.clear()  # FLUSHALL
    clock.advance(61)
    a.succeed(2)
    a.channel.publish()  # a new minute: it checks its slot, finds it gone, signs again
    view = process().view()
    assert [p.pid for p in view.processes] == [a.me.pid]
    assert view.window(10).success == 2


def test_the_reader_sees_who_is_behind_the_store(process, clock):
    a, b = process(), process()
    a.succeed()
    b.succeed()
    a.breaker.force_open(actor="operator alice")
    a.channel.publish()
    b.channel.publish()  # b has not looked at the store since
    views = {p.pid: p for p in a.view().processes}
    assert views[a.me.pid].state == "open" and views[a.me.pid].forced
    assert views[b.me.pid].state == "closed"
    assert views[b.me.pid].uid != a.breaker.record.uid
    assert views[a.me.pid].synced_at is not None


def test_a_store_that_is_not_shared_shows_this_process_only(clock):
    breaker = CircuitBreaker("db", store=LocalStore(clock=clock), clock=clock)
    channel = fleet.Channel(breaker.store, me=Identity("solo", "h", 1, "web"))
    channel.add(breaker)  # as the registry does when it makes the breaker
    breaker.call(lambda: None)
    view = fleet.fleet_view(breaker, channel=channel)
    assert not view.shared
    assert view.scope.startswith("this process only")
    assert view.window(10).success == 1
    assert [p.pid for p in view.processes] == [1]


def test_a_dead_cache_falls_back_to_this_process(process, clock):
    a = process()
    a.succeed(2)
    a.channel.publish()
    a.handle.down = True
    view = a.view()
    assert (
        not view.available and view.scope == "this process only: the shared store does not answer"
    )
    assert view.window(10).success == 2


# --- the outage, from the shared history -------------------------------------------------


def _rec(epoch: int, state: State, at: float, reason: str, **fields: Any) -> Record:
    return Record(epoch=epoch, state=state, uid=f"u{epoch}", at=at, reason=reason, **fields)


HISTORY = [
    _rec(1, State.OPEN, 100, "5 consecutive failures (threshold 5)", opened_at=100,
         open_until=130, error="refused", error_type="OperationalError", actor="web pid 1@a"),
    _rec(2, State.OPEN, 131, "probe failed", opened_at=131, open_until=161,
         error="refused", actor="celery pid 2@a"),
    _rec(3, State.CLOSED, 162, "probe succeeded", actor="web pid 1@a"),
    _rec(4, State.OPEN, 3000, "5 consecutive failures (threshold 5)", opened_at=3000,
         open_until=3030, actor="web pid 3@a"),
    _rec(5, State.OPEN, 3031, "probe failed", opened_at=3031, open_until=3061,
         actor="web pid 3@a"),
]  # fmt: skip


def test_the_current_outage_counts_from_its_first_open_through_failed_probes():
    outage = fleet.current_outage(HISTORY)
    assert outage is not None
    assert outage.opened.epoch == 4 and outage.since == 3000
    assert [p.actor for p in outage.probes] == ["web pid 3@a"]
    assert outage.lasted(3100) == 100
    assert fleet.current_outage(HISTORY[:3]) is None  # closed


def test_recent_probes_and_the_longest_open():
    probes = fleet.recent_probes(HISTORY)
    assert [(p.actor, p.succeeded) for p in probes] == [
        ("celery pid 2@a", False),
        ("web pid 1@a", True),
        ("web pid 3@a", False),
    ]
    assert fleet.longest_open(HISTORY, now=3100) == 100  # the current one (62 s before)
    assert fleet.longest_open(HISTORY, now=3100, span=10_000) == 100
    assert fleet.longest_open(HISTORY[:3], now=200, span=10_000) == 62


def test_state_bands_show_open_half_open_and_closed():
    bands = fleet.state_bands(HISTORY, now=3100, span=3100)
    states = [(b.state, b.start, b.end) for b in bands]
    assert states == [
        ("closed", 0, 100),
        ("open", 100, 130),
        ("half_open", 130, 131),
        ("open", 131, 161),
        ("half_open", 161, 162),
        ("closed", 162, 3000),
        ("open", 3000, 3030),
        ("half_open", 3030, 3031),
        ("open", 3031, 3061),
        ("half_open", 3061, 3100),
    ]
    cut = fleet.state_bands(HISTORY[3:], now=3100, span=3100)
    assert cut[0].state == "unknown"  # the history before epoch 4 was not read


def test_forced_open_is_open_to_the_end():
    forced = [_rec(1, State.OPEN, 10, "forced open", forced=True, opened_at=10)]
    assert [(b.state, b.end) for b in fleet.state_bands(forced, now=100, span=100)] == [
        ("closed", 10),
        ("open", 100),
    ]


# --- who a process is -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "role"),
    [
        (["/srv/.venv/bin/gunicorn", "questdash.wsgi:application"], "web"),
        (["/usr/lib/python3/site-packages/gunicorn/__main__.py"], "web"),
        (["/srv/.venv/bin/celery", "-A", "questdash", "worker"], "celery"),
        (["manage.py", "runserver"], "web"),
        (["manage.py", "breaker", "status"], "manage.py breaker"),
        (["/srv/.venv/bin/pytest"], "pytest"),
        ([], "python"),
    ],
)
def test_the_role_comes_from_the_program(argv, role):
    assert detect_role(argv) == role


def test_the_role_setting_wins_and_names_the_actor(settings):
    from resilience.breaker.machine import this_process
    from resilience.process import forget_identity, reports_to_fleet

    settings.RESILIENCE = {"PROCESS_ROLE": "celery"}
    forget_identity()
    assert this_process().startswith("celery pid ")
    assert reports_to_fleet()
    settings.RESILIENCE = {}
    forget_identity()
    assert this_process().startswith("pytest pid ")
    assert not reports_to_fleet()  # a test run is not part of the fleet


def test_a_process_deletes_its_expired_blob_once_a_minute(process, clock, shared):
    a = process()
    a.succeed()
    a.channel.publish()
    first = int(clock.time() // 60)
    key = f"resilience:fleet:figures:{first}:{a.me.id}"
    assert shared.get(key) is not None
    for _ in range(fleet.KEEP_MINUTES):
        clock.advance(60)
        a.succeed()
        a.channel.publish()
    assert shared.get(key) is None  # gone, not just expired (a database cache keeps rows)
    assert "delete" in a.handle.calls


@pytest.mark.parametrize(
    ("settings_", "check"),
    [
        ({"FLEET_REPORT_INTERVAL": -1}, "E016"),
        ({"FLEET_PROCESS_TIMEOUT": 0}, "E016"),
        ({"FLEET_REPORT_INTERVAL": 5, "FLEET_PROCESS_TIMEOUT": 10}, "E016"),
        ({"PROCESS_ROLE": ""}, "E017"),
        ({"PROCESS_ROLE": 7}, "E017"),
    ],
)
def test_fleet_settings_are_checked(settings_, check):
    from resilience.conf import value_problems

    problems = value_problems(settings_, "RESILIENCE")
    assert [p[0] for p in problems] == [check], problems
    assert all(p[1] and p[2] for p in problems)  # says what is wrong and what to do


def test_calls_made_before_reporting_began_are_not_filed_as_now(clock):
    breaker = CircuitBreaker("db", store=LocalStore(clock=clock), clock=clock)
    for _ in range(5):
        breaker.call(lambda: None)  # an hour ago, say, before this breaker was watched
    channel = fleet.Channel(breaker.store, me=Identity("late", "h", 1, "web"))
    channel.add(breaker)
    breaker.call(lambda: None)
    assert fleet.fleet_view(breaker, channel=channel).window(600).success == 1
