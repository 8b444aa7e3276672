"""Real processes sharing breakers through a real redis-server (the root conftest's).

Each worker is ``python -m testkit.redis_worker``: its own
interpreter, Django, CacheStore and connection pool. Nothing here skips:
without redis-server the session fixture fails, and so do these tests.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
import redis

from testkit.redis_worker import WorkerProcess, start_workers


@pytest.fixture(scope="module")
def fleet(redis_url, tmp_path_factory):
    workers = start_workers(redis_url, tmp_path_factory.mktemp("workers"), 4)
    yield workers
    for worker in workers:
        worker.close()


@pytest.fixture
def name() -> str:
    return f"questdb-{uuid.uuid4().hex[:8]}"


def test_one_probe_per_recovery_window_across_four_processes(fleet, name):
    for worker in fleet:
        worker.ask("make", name=name, threshold=1, recovery=0.4)
    assert fleet[0].ask("call", name=name, outcome="fail")["state"] == "open"
    start_at = time.time() + 0.3
    for worker in fleet:
        worker.send("race", name=name, start_at=start_at, seconds=2.5, hold=0.05)
    probes = [p for worker in fleet for p in worker.read(timeout=30)["probes"]]
    per_window = Counter((p["epoch"], p["window"]) for p in probes)
    assert per_window and max(per_window.values()) == 1, per_window
    assert len(probes) >= 3  # it kept probing, window after window
    ordered = sorted(probes, key=lambda p: p["epoch"])
    opened = [p["opened_at"] for p in ordered]
    assert opened == sorted(opened)  # opened_at never moved backwards


def test_a_process_that_starts_does_not_reset_shared_state(fleet, name, redis_url, tmp_path):
    client = redis.Redis.from_url(redis_url)
    fleet[0].ask("make", name=name, threshold=5, recovery=60)
    for _ in range(3):
        assert fleet[0].ask("call", name=name, outcome="fail")["result"] == "failed"
    keys = sorted(client.keys(f"*{name}*"))
    before = {key: client.dump(key) for key in keys}
    assert keys  # the failures are in Redis

    (newcomer,) = start_workers(redis_url, tmp_path, 1)
    try:
        newcomer.ask("make", name=name, threshold=5, recovery=60)
        snapshot = newcomer.ask("snapshot", name=name)
        assert (snapshot["state"], snapshot["failure_count"]) == ("closed", 3)
        assert {key: client.dump(key) for key in keys} == before  # it only read
        for _ in range(2):
            newcomer.ask("call", name=name, outcome="fail")
        assert newcomer.ask("snapshot", name=name)["state"] == "open"
    finally:
        newcomer.close()
    time.sleep(0.6)
    assert fleet[0].ask("call", name=name)["result"] == "rejected:open"


def test_processes_converge_within_a_second(fleet, name):
    for worker in fleet:
        worker.ask("make", name=name, threshold=1, recovery=60)
        worker.ask("call", name=name)  # warm: each has synced once
    watchers = fleet[1:]
    for worker in watchers:
        worker.send("watch", name=name, seconds=5)
    time.sleep(0.3)  # watchers are on their closed path
    tripped = fleet[0].ask("call", name=name, outcome="fail")
    assert tripped["state"] == "open"
    lags = []
    for worker in watchers:
        answer = worker.read(timeout=10)
        assert answer["rejected_at"] is not None, answer
        assert answer["calls"] > 100  # they really were calling
        lags.append(answer["rejected_at"] - tripped["at"])
    print(f"convergence after a trip: {', '.join(f'{lag * 1000:.0f} ms' for lag in lags)}")
    assert max(lags) < 1.0


def test_breakers_survive_redis_going_away_and_coming_back(fleet, name, redis_server):
    first, second = fleet[0], fleet[1]
    for worker in (first, second):
        worker.ask("make", name=name, threshold=3, recovery=60)
        worker.ask("call", name=name)
    unavailable_before = first.ask("events").get("resilience.cache_unavailable", 0)
    recovered_before = first.ask("events").get("resilience.cache_recovered", 0)

    redis_server.stop()
    try:
        results = [first.ask("call", name=name, outcome="fail")["result"] for _ in range(3)]
        assert results == ["failed"] * 3
        assert first.ask("call", name=name)["result"] == "rejected:open"  # opened locally
        for _ in range(10):
            assert first.ask("call", name=name)["result"] == "rejected:open"
            time.sleep(0.1)
        snapshot = first.ask("snapshot", name=name)
        assert snapshot["store_healthy"] is False
        events = first.ask("events")
        assert events.get("resilience.cache_unavailable", 0) == unavailable_before + 1  # once
    finally:
        redis_server.start()

    time.sleep(0.7)  # past the outage retry interval
    assert first.ask("call", name=name)["result"] == "rejected:open"
    # The first call after the interval starts one retry in the background (no request
    # waits on it); the cache is back as soon as that answers.
    deadline = time.monotonic() + 3
    while not first.ask("snapshot", name=name)["store_healthy"]:
        assert time.monotonic() < deadline, "the store never came back"
        time.sleep(0.05)
    assert first.ask("events")["resilience.cache_recovered"] == recovered_before + 1
    # What the process decided while Redis was away is now what everyone sees.
    time.sleep(0.6)
    assert second.ask("call", name=name)["result"] == "rejected:open"
    assert (
        second.ask("snapshot", name=name)["opened_at"]
        == first.ask("snapshot", name=name)["opened_at"]
    )


def test_fleet_figures_add_up_across_real_processes(redis_server, tmp_path, settings):
    """Three processes report through their own threads; this one reads the sum from Redis."""
    from resilience import fleet
    from resilience.registry import get_breaker

    url = redis_server.fresh_database(7)
    roles = ["web", "web", "celery"]
    # idle processes report every 0.5 s; one silent for 1.5 s drops off
    env = {"FLEET_TIMEOUT": "1.5"}
    workers = [WorkerProcess(url, tmp_path, env={**env, "WORKER_ROLE": role}) for role in roles]
    try:
        for worker in workers:
            worker.wait_ready()
        for number, worker in enumerate(workers, 1):
            worker.ask("make", name="questdb", threshold=100, recovery=60)
            assert worker.ask("report", name="questdb", interval=0.2)["reporting"].startswith(
                f"{roles[number - 1]} pid "
            )
            worker.ask("burst", name="questdb", ok=10 * number, failed=number)
        settings.CACHES = {
            "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
        }
        settings.RESILIENCE = {"STORE": "resilience.stores.CacheStore"}
        breaker = get_breaker("questdb")

        def view() -> fleet.FleetView:
            return fleet.fleet_view(breaker, timeout=1.5)

        deadline = time.monotonic() + 10
        while (seen := view()).window(60).calls < 66 and time.monotonic() < deadline:
            time.sleep(0.1)
        minute = seen.window(60)
        assert (minute.success, minute.failure, minute.rejected) == (60, 6, 0)
        assert minute.error_rate == round(100 * 6 / 66, 1)
        assert sorted(p.role for p in seen.processes) == ["celery", "web", "web"]
        assert {p.pid for p in seen.processes} == {w.process.pid for w in workers}
        assert seen.timed_calls == 66 and seen.p50 < 0.0025 and 0.1 < seen.p99 <= 0.25

        workers[2].process.kill()  # dies without a word
        workers[2].process.wait(5)
        deadline = time.monotonic() + 10
        while len(view().processes) == 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        after = view()
        assert sorted(p.role for p in after.processes) == ["web", "web"]
        assert after.window(60).calls == 66  # its calls were real: they still count
    finally:
        for worker in workers:
            worker.close()
