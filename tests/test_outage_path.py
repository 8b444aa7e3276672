"""The outage path is the cheap path (issue 11): what a request does not do, counted on Redis.

Each test gives the code under test its own Redis (Django's RedisCache on a
real redis-server) and reads Redis's own command counts, so "no write" and
"no round trip" are what the server saw. Performance itself is measured in
benchmarks/load.py; here only the work that is, or is not, done.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
from django.contrib.auth.models import Group, Permission
from django.test import Client

from questdash.health import LIVE_FOR
from resilience.fallback import FAILED_PREFIX, LOCK_PREFIX, RECHECK, CachedFallback
from resilience.registry import get_breaker

pytestmark = [pytest.mark.usefixtures("questdb_server"), pytest.mark.django_db(databases="__all__")]

WRITES = ("set", "setex", "psetex", "del", "unlink", "incrby", "expire", "pexpire")


class Commands:
    """How many commands of each kind a Redis server ran since the last look."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.before = self._now()

    def _now(self) -> dict[str, int]:
        stats = self.client.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}

    def since(self) -> dict[str, int]:
        now = self._now()
        seen = {name: calls - self.before.get(name, 0) for name, calls in now.items()}
        self.before = now
        return {name: calls for name, calls in seen.items() if calls and name != "info"}


@pytest.fixture
def shared(settings, redis_server, fresh_state) -> str:
    """A "shared" cache alias on its own Redis database, emptied."""
    url = redis_server.fresh_database(7)
    settings.CACHES = {
        **settings.CACHES,
        "shared": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url},
    }
    return url


def refused() -> list:
    raise ConnectionRefusedError(111, "Connection refused")


def test_breaker_open_means_no_cache_write_and_a_look_a_second(shared, settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "FAILURE_THRESHOLD": 2}
    rows: list = [[{"n": 1}]]
    query = CachedFallback(
        "cheap_outage",
        lambda: rows[0] if rows else refused(),
        breaker_name="cheap_outage",
        cache_alias="shared",
        fresh_for=0,
    )
    assert query.get().status == "ok"
    rows.clear()
    while get_breaker("cheap_outage").public_state != "open":
        assert query.get().status == "degraded"
    commands = Commands(shared)
    started = time.monotonic()
    answers = [query.get() for _ in range(300)]
    looked = time.monotonic() - started
    assert {(a.status, a.reason.split(":")[0]) for a in answers} == {("degraded", "circuit_open")}
    assert {a.data[0]["n"] for a in answers} == {1}
    seen = commands.since()
    assert not set(seen) & set(WRITES), seen  # no lock, no failure note, no unlock
    assert seen.get("get", 0) <= looked / RECHECK + 1, seen


def test_a_young_copy_costs_no_round_trip(shared):
    query = CachedFallback("young", lambda: [{"n": 1}], breaker_name="young",
                           cache_alias="shared", fresh_for=60)  # fmt: skip
    assert query.get().status == "ok"  # read from the dependency, stored
    commands = Commands(shared)
    answers = [query.get() for _ in range(200)]
    assert {(a.status, a.data[0]["n"]) for a in answers} == {("ok", 1)}
    assert commands.since() == {}


def test_a_waiter_answers_with_the_refresh_it_found_not_the_next_one(shared):
    """Requests waiting on a refresh stop when its lock is gone or someone else's: waiting
    on the next refresh too would add its time to theirs (the trip's long tail)."""
    query = CachedFallback("waiters", lambda: [{"n": 1}], breaker_name="waiters",
                           cache_alias="shared", fresh_for=0)  # fmt: skip
    assert query.get().status == "ok"  # a copy to fall back on
    cache = query.shared.cache
    cache.set(LOCK_PREFIX + "waiters", "first-refresh", 30)
    answers = []
    waiter = threading.Thread(target=lambda: answers.append(query.get()))
    waiter.start()
    time.sleep(0.3)  # the waiter has found the first refresh
    failure = {"reason": "database_unavailable: first", "retry_after": 3, "at": time.time()}
    cache.set(FAILED_PREFIX + "waiters", failure)
    cache.set(LOCK_PREFIX + "waiters", "second-refresh", 30)  # another request's, at once
    waiter.join(10)
    assert [(a.status, a.reason, a.data) for a in answers] == [
        ("degraded", "database_unavailable: first", [{"n": 1}])
    ]


def test_liveness_writes_by_the_second_not_by_the_call(shared, settings):
    settings.CACHES = {**settings.CACHES, "default": settings.CACHES["shared"]}
    client = Client()
    commands = Commands(shared)
    started = time.monotonic()
    for _ in range(100):
        response = client.get("/ht/live/", {"format": "json"})
        assert response.status_code == 200
        assert response.json() == {
            "Database(alias='default')": "OK",
            "CacheRoundTrip(alias='default')": "OK",
        }
    checks = (time.monotonic() - started) / LIVE_FOR + 1  # at most one run of the checks each
    writes = sum(calls for name, calls in commands.since().items() if name in WRITES)
    assert 0 < writes <= 2 * checks  # the cache check's set and delete, not 100 of each


@pytest.mark.parametrize(
    ("grant", "status"),
    [("nothing", 403), ("user", 200), ("group", 200), ("superuser", 200), ("inactive", 401)],
)
def test_the_api_asks_the_permission_as_django_does(django_user_model, grant, status):
    """The API's one-query permission check gives Django's answer for every way to hold it."""
    user = django_user_model.objects.create_user(
        f"who-{grant}", password="x", is_staff=True, is_superuser=grant == "superuser"
    )
    viewing = Permission.objects.get(codename="view_dashboard")
    if grant in ("user", "inactive"):
        user.user_permissions.add(viewing)
    if grant == "group":
        group = Group.objects.create(name="dashboard viewers")
        group.permissions.add(viewing)
        user.groups.add(group)
    client = Client()
    client.force_login(user)
    if grant == "inactive":
        django_user_model.objects.filter(pk=user.pk).update(is_active=False)
    django_says = django_user_model.objects.get(pk=user.pk).has_perm("questdash.view_dashboard")
    response = client.get("/api/dashboard/positions/")
    assert response.status_code == status
    assert (response.status_code == 200) == django_says
