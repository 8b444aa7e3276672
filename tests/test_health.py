"""Health checks at /ht/ and /ht/live/, each healthy and failing, against the real services.

QuestDB is the real server, reached through a real Toxiproxy that can refuse
or blackhole it; Redis is a real redis-server. Every output is searched for
the QuestDB password.
"""

from __future__ import annotations

import datetime
import io
import threading
import time

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from health_check.exceptions import ServiceUnavailable

from questdash.health import QuestDB, section_queries
from questdash.sections import LOADERS, section
from questdash.tasks import HEARTBEAT
from resilience.fallback import KEY_PREFIX
from resilience.health import (
    BreakerState,
    CacheRoundTrip,
    FallbackFreshness,
    Heartbeat,
    record_heartbeat,
    redis_check,
)
from resilience.registry import get_breaker
from testkit.ports import free_port

from .settings import TEST_ENV

pytestmark = [
    pytest.mark.usefixtures("questdb_server", "fresh_state"),
    pytest.mark.django_db(transaction=True, databases=["default", "questdb"]),
]

PASSWORD = TEST_ENV["QUESTDB_PASSWORD"]
LIVE_KEYS = {"Database(alias='default')", "CacheRoundTrip(alias='default')"}
TOKEN = "health-token-for-the-tests-0123"


@pytest.fixture(autouse=True)
def health_token(settings):
    """These tests read the failure detail, which needs the token (tests/test_access.py)."""
    settings.HEALTH_TOKEN = TOKEN


def warm() -> None:
    """What the beat does: every section refreshed, and its heartbeat."""
    for slug in LOADERS:
        assert section(slug).refresh().status == "ok", slug
    record_heartbeat(HEARTBEAT)


def health(path: str, **params) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = Client().get(
        path, {"format": "json", **params}, HTTP_AUTHORIZATION=f"Bearer {TOKEN}"
    )
    elapsed = time.monotonic() - started
    assert PASSWORD not in response.content.decode()
    return response.status_code, response.json(), elapsed


def failing(check) -> str:
    with pytest.raises(ServiceUnavailable) as info:
        check.run()
    message = str(info.value)
    assert PASSWORD not in message
    return message


# --- /ht/ and /ht/live/ -------------------------------------------------------------------


def test_everything_up_is_healthy_in_every_format():
    warm()
    status, body, elapsed = health("/ht/")
    assert status == 200, body
    assert set(body.values()) == {"OK"}
    assert {
        "QuestDB(alias='questdb')",
        "BreakerState(name='questdb')",
        f"Heartbeat(name='{HEARTBEAT}')",
        *LIVE_KEYS,
        *(f"FallbackFreshness(query='{name}')" for name in section_queries()),
    } == set(body)
    assert elapsed < 1.0

    text = Client().get("/ht/", {"format": "text"}, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert text.status_code == 200
    assert "QuestDB(alias='questdb'): OK" in text.content.decode()
    page = Client().get("/ht/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    assert b"QuestDB" in page.content
    assert page["Cache-Control"].startswith("max-age=0")


def test_live_checks_only_this_process_database_and_cache():
    status, body, _ = health("/ht/live/")
    assert status == 200
    assert body == dict.fromkeys(LIVE_KEYS, "OK")


def test_cold_start_is_not_ready_until_copies_and_beat_exist():
    status, body, _ = health("/ht/")
    assert status == 503
    assert body["QuestDB(alias='questdb')"] == "OK"
    assert body["FallbackFreshness(query='positions')"] == (
        "Unavailable: no good copy of 'positions' yet: it has never been loaded"
    )
    assert "celery -A questdash worker -B" in body[f"Heartbeat(name='{HEARTBEAT}')"]
    assert health("/ht/live/")[0] == 200


def test_redis_is_checked_when_configured(settings, redis_server):
    warm()
    settings.REDIS_URL = redis_server.url
    status, body, _ = health("/ht/")
    key = f"Redis(db=0, host='127.0.0.1', port={redis_server.port})"
    assert status == 200, body
    assert body[key] == "OK"


def test_management_command_runs_the_checks():
    warm()
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("health_check", "health_check", "--no-http", stdout=out)
    assert exit_info.value.code == 0, out.getvalue()
    assert "QuestDB(alias='questdb'): OK" in out.getvalue()
    assert PASSWORD not in out.getvalue()


# --- QuestDB: refused, blackholed, breaker open ------------------------------------------------


def test_questdb_refusing_connections_fails_its_check_quickly(questdb_via_proxy):
    warm()
    questdb_via_proxy.set_enabled(False)
    status, body, elapsed = health("/ht/")
    assert status == 503
    assert elapsed < 1.0
    message = body["QuestDB(alias='questdb')"]
    assert message.startswith("Unavailable: SELECT 1 failed: "), message
    assert "circuit breaker closed" in message
    assert {key: value for key, value in body.items() if "QuestDB" not in key} == dict.fromkeys(
        set(body) - {"QuestDB(alias='questdb')"}, "OK"
    )
    assert health("/ht/live/")[0] == 200


def test_ht_answers_within_a_second_while_questdb_is_blackholed(questdb_via_proxy):
    warm()
    questdb_via_proxy.blackhole()
    for _ in range(4):
        status, body, elapsed = health("/ht/")
        assert status == 503
        assert elapsed < 1.0, f"/ht/ took {elapsed:.2f} s"
        # Either this request gave up waiting, or it joined a probe that just timed out.
        assert body["QuestDB(alias='questdb')"] in {
            "Unavailable: QuestDB did not answer SELECT 1 within 0.8 s (circuit breaker closed)",
            "Unavailable: SELECT 1 failed: Failed to health_check: QuestDB did not complete"
            " the connection within 2 s (circuit breaker closed)",
        }
        probes = [t for t in threading.enumerate() if t.name.startswith("health-probe:")]
        assert len(probes) <= 1, "a hanging probe is joined, never repeated"
        live_status, live, live_elapsed = health("/ht/live/")
        assert live_status == 200, live
        assert live_elapsed < 0.5


def test_open_breaker_is_reported_without_touching_the_network(
    questdb_via_proxy, settings, connect_attempts
):
    settings.RESILIENCE = {**settings.RESILIENCE, "FAILURE_THRESHOLD": 1}
    warm()
    questdb_via_proxy.set_enabled(False)
    assert health("/ht/")[0] == 503  # the probe fails once: the breaker opens
    assert get_breaker("questdb").public_state == "open"

    connect_attempts.clear()
    status, body, elapsed = health("/ht/")
    assert status == 503
    assert elapsed < 0.5
    assert connect_attempts == []
    for key in ("QuestDB(alias='questdb')", "BreakerState(name='questdb')"):
        message = body[key]
        assert message.startswith("Unavailable: circuit breaker 'questdb' is open; opened at "), (
            message
        )
        assert "next probe at " in message
        assert "last error: " in message
    assert health("/ht/live/")[0] == 200
    assert connect_attempts == []


def test_questdb_check_probes_when_due_and_heals(questdb_via_proxy, settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "FAILURE_THRESHOLD": 1, "RECOVERY_TIMEOUT": 0.5}
    questdb_via_proxy.set_enabled(False)
    failing(QuestDB())
    assert get_breaker("questdb").public_state == "open"
    questdb_via_proxy.set_enabled(True)
    time.sleep(0.6)
    QuestDB().run()  # the half-open probe goes through and closes the breaker
    assert get_breaker("questdb").public_state == "closed"


# --- each other check, healthy and failing -------------------------------------------------------


def test_breaker_state_check():
    BreakerState(name="questdb").run()
    BreakerState().run()
    get_breaker("questdb").force_open()
    message = failing(BreakerState(name="questdb"))
    assert "circuit breaker 'questdb' is open (forced)" in message
    assert "no probe until it is reset" in message
    assert "'questdb' is open" in failing(BreakerState())
    get_breaker("questdb").reset()
    BreakerState(name="questdb").run()


def test_cache_check_against_the_database_cache_and_real_redis(settings, redis_server):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings.CACHES = {
        **settings.CACHES,
        "redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                  "LOCATION": redis_server.url},
        "dead": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": dead,
                 "OPTIONS": {"socket_connect_timeout": 0.5}},
    }  # fmt: skip
    CacheRoundTrip(alias="default").run()
    CacheRoundTrip(alias="redis").run()
    message = failing(CacheRoundTrip(alias="dead"))
    assert message.startswith("Unavailable: cache 'dead' failed: ConnectionError")


def test_fallback_freshness_check():
    check = FallbackFreshness(query="positions", max_age=60)
    assert "no good copy of 'positions' yet" in failing(check)
    assert section("positions").refresh().status == "ok"
    check.run()
    old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)
    cache.set(KEY_PREFIX + "positions", {"data": [{"x": 1}], "cached_at": old}, None)
    message = failing(check)
    assert message.startswith("Unavailable: the last good copy of 'positions' is 600 s old")
    assert "limit 60 s" in message


def test_heartbeat_check():
    check = Heartbeat(name=HEARTBEAT, max_age=30, hint="start the beat")
    assert failing(check).endswith("no heartbeat from 'celery-beat' yet: start the beat")
    record_heartbeat(HEARTBEAT)
    check.run()
    record_heartbeat(HEARTBEAT, when=time.time() - 90)
    assert "is 90 s old" in failing(check)


def test_redis_check_healthy_failing_and_never_showing_a_password(redis_server):
    check_class, options = redis_check(redis_server.url)
    check = check_class(**options)
    result = _result(check)
    assert result.error is None

    check_class, options = redis_check(f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0")
    check = check_class(**options)
    result = _result(check)
    assert str(result.error).startswith("Unavailable: Unable to connect to Redis")
    assert PASSWORD not in repr(check)
    assert PASSWORD not in str(check.labels)


def _result(check):
    import asyncio

    return asyncio.run(check.get_result())
