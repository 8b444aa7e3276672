"""Celery beat keeps the dashboard warm: real worker + beat processes on a real Redis,
QuestDB behind a real Toxiproxy; and the embedded (filesystem) broker of the demo.

The test process itself never sends a query to QuestDB here: every refresh and
every probe that heals the breaker comes from the worker.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.cache import cache

from questdash.celery import app
from questdash.sections import LOADERS, section
from questdash.tasks import HEARTBEAT, refresh_dashboard, refresh_section
from resilience.fallback import LOCK_PREFIX
from resilience.health import last_heartbeat
from resilience.registry import get_breaker

from .settings import TEST_ENV

pytestmark = [
    pytest.mark.usefixtures("questdb_server", "fresh_state"),
    pytest.mark.django_db(transaction=True, databases=["default", "questdb"]),
]

PASSWORD = TEST_ENV["QUESTDB_PASSWORD"]
ROOT = Path(__file__).resolve().parent.parent
CELERY = str(Path(sys.executable).parent / "celery")
INTERVAL = 1.0


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Poll until condition() is true; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


class Worker:
    """`celery -A questdash worker -B` in its own process group, its log in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.output = log.open("w")
        self.process = subprocess.Popen(
            [CELERY, "-A", "questdash", "worker", "-B", "--loglevel", "INFO",
             "--concurrency", "2", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=self.output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def events(self, event_type: str) -> list[dict]:
        found = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{") and f'"{event_type}"' in line:
                event = json.loads(line)
                if event.get("event_type") == event_type:
                    found.append(event)
        return found

    def connection_errors(self) -> int:
        """Log lines that report a failed attempt to reach QuestDB."""
        return self.log.read_text().count('"error_type": "OperationalError"')

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # warm shutdown: worker and beat
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.output.close()
        assert PASSWORD not in self.log.read_text()


def worker_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "QUESTDASH_VAR_DIR": str(tmp_path),
        "DASHBOARD_REFRESH_INTERVAL": str(INTERVAL),
        **extra,
    }
    env.pop("REDIS_URL", None) if "REDIS_URL" not in extra else None
    return env


@pytest.fixture
def shared_redis(settings, redis_server) -> Iterator[str]:
    """A Redis database of its own; this process reads copies and breaker state from it."""
    url = redis_server.fresh_database(4)
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    }
    settings.RESILIENCE = {**settings.RESILIENCE, "STORE": "resilience.stores.CacheStore"}
    yield url


def cached_at(slug: str) -> datetime.datetime | None:
    copy = section(slug).last_good()
    return copy.cached_at if copy else None


def test_worker_and_beat_keep_copies_fresh_and_heal_the_breaker_without_web_traffic(
    tmp_path, shared_redis, questdb_proxy, connect_attempts
):
    env = worker_env(
        tmp_path,
        REDIS_URL=shared_redis,
        QUESTDB_PORT=str(questdb_proxy.port),
        RESILIENCE_FAILURE_THRESHOLD="2",
        RESILIENCE_RECOVERY_TIMEOUT="3",
    )
    worker = Worker(env, tmp_path / "worker.log")
    try:
        # Warm: every section gets a copy, then each copy is renewed within one interval.
        wait_until(lambda: all(cached_at(slug) for slug in LOADERS), 20, "first copies")
        first = {slug: cached_at(slug) for slug in LOADERS}
        took = wait_until(
            lambda: all(cached_at(slug) > first[slug] for slug in LOADERS),
            INTERVAL + 1.5,
            "every copy refreshed by the next beat",
        )
        assert took <= INTERVAL + 1.5
        assert time.time() - last_heartbeat(HEARTBEAT) < INTERVAL + 1.5
        assert get_breaker("questdb").public_state == "closed"

        # Outage: the refreshes fail, the breaker opens, the copies survive.
        questdb_proxy.set_enabled(False)
        wait_until(lambda: get_breaker("questdb").public_state == "open", 15, "breaker open")
        opened = time.monotonic()
        kept = {slug: cached_at(slug) for slug in LOADERS}
        assert all(kept.values())
        # Calls already under way when it opened may still fail; then, while it is
        # open (3 s), the beat sends nothing to QuestDB: no new connection error.
        wait_until(lambda: worker.events("questdash.refresh.skipped"), 3, "a skipped refresh")
        time.sleep(0.3)
        errors_then = worker.connection_errors()
        time.sleep(max(0.0, opened + 2.7 - time.monotonic()))
        assert worker.events("questdash.refresh.skipped")
        assert worker.connection_errors() == errors_then

        # Recovery with no web traffic: the beat's half-open probe closes the breaker.
        questdb_proxy.set_enabled(True)
        healed_at = datetime.datetime.now(datetime.UTC)
        wait_until(lambda: get_breaker("questdb").public_state == "closed", 12, "breaker closed")
        wait_until(
            lambda: all(cached_at(slug) > healed_at for slug in LOADERS), 5, "fresh copies again"
        )
        assert connect_attempts == [], "this process never queried QuestDB"
        transitions = [
            (e["data"]["from"], e["data"]["to"])
            for e in worker.events("resilience.state_changed")
            if not e["data"]["observed"]
        ]
        assert ("half_open", "closed") in transitions
    finally:
        worker.stop()


def test_embedded_filesystem_broker_runs_the_beat_without_redis(tmp_path):
    env = worker_env(tmp_path)
    subprocess.run([sys.executable, "manage.py", "createcachetable"], cwd=ROOT, env=env, check=True)
    worker = Worker(env, tmp_path / "worker.log")
    try:
        wait_until(
            lambda: (
                {
                    e["data"]["section"]
                    for e in worker.events("questdash.refresh.done")
                    if e["data"]["status"] == "ok"
                }
                == set(LOADERS)
            ),
            25,
            "every section refreshed through the filesystem broker",
        )
        assert (tmp_path / "celery" / "queue").is_dir()
    finally:
        worker.stop()


# --- the tasks in this process ------------------------------------------------------------


def test_beat_entry_and_fan_out_expire_after_one_interval(settings, monkeypatch):
    entry = app.conf.beat_schedule["refresh-dashboard"]
    assert entry["task"] == refresh_dashboard.name
    assert entry["schedule"] == settings.DASHBOARD_REFRESH_INTERVAL
    assert entry["options"]["expires"] == settings.DASHBOARD_REFRESH_INTERVAL
    sent = []
    monkeypatch.setattr(refresh_section, "apply_async", lambda *a, **kw: sent.append((a, kw)))
    assert refresh_dashboard() == list(LOADERS)
    assert sent == [
        (((slug,),), {"expires": settings.DASHBOARD_REFRESH_INTERVAL}) for slug in LOADERS
    ]
    assert time.time() - last_heartbeat(HEARTBEAT) < 5


def test_no_redis_means_the_filesystem_broker():
    assert app.conf.broker_url.startswith("filesystem://")
    options = app.conf.broker_transport_options
    assert options["data_folder_in"] == options["data_folder_out"]
    assert Path(options["control_folder"]).is_dir()


def test_open_breaker_skips_the_fan_out_until_a_probe_is_due(
    settings, monkeypatch, questdb_via_proxy, connect_attempts
):
    settings.RESILIENCE = {**settings.RESILIENCE, "FAILURE_THRESHOLD": 1, "RECOVERY_TIMEOUT": 0.5}
    sent = []
    monkeypatch.setattr(refresh_section, "apply_async", lambda *a, **kw: sent.append(a))
    questdb_via_proxy.set_enabled(False)
    assert refresh_section("positions") == "error"
    assert get_breaker("questdb").public_state == "open"

    connect_attempts.clear()
    assert refresh_dashboard() == []
    assert sent == []
    assert connect_attempts == []

    questdb_via_proxy.set_enabled(True)
    time.sleep(0.6)
    assert refresh_dashboard() == list(LOADERS)  # half-open: the refreshes carry the probe
    assert refresh_section("positions") == "ok"
    assert get_breaker("questdb").public_state == "closed"


def test_one_refresh_per_section_at_a_time(connect_attempts):
    assert cache.add(LOCK_PREFIX + "positions", "another-worker", 15)
    assert refresh_section("positions") == "error"  # skipped: no copy yet, nothing queried
    assert connect_attempts == []
    cache.delete(LOCK_PREFIX + "positions")
    assert refresh_section("positions") == "ok"
    assert connect_attempts
