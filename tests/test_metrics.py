"""Prometheus metrics at /metrics: they parse, they move when the breaker trips, and
several gunicorn workers add up (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from questdash.health import section_queries
from questdash.sections import LOADERS, section
from resilience.registry import get_breaker
from testkit.ports import free_port

from .settings import TEST_ENV

pytestmark = [
    pytest.mark.usefixtures("questdb_server", "fresh_state"),
    pytest.mark.django_db(transaction=True, databases=["default", "questdb"]),
]

PASSWORD = TEST_ENV["QUESTDB_PASSWORD"]
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "metrics-token-for-the-tests-0123"
SCRAPER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def metrics_token(settings):
    """Prometheus scrapes with the token (who else may: tests/test_access.py)."""
    settings.METRICS_TOKEN = TOKEN


def parse(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample as {(name, sorted labels): value}."""
    assert PASSWORD not in text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: Client | None = None) -> dict[tuple[str, tuple], float]:
    response = (client or Client()).get("/metrics", headers=SCRAPER)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.content.decode())


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_parse_and_show_breaker_copies_and_latency():
    for slug in LOADERS:
        assert section(slug).get().status == "ok"
    samples = scrape()
    assert value(samples, "resilience_breaker_state", breaker="questdb", state="closed") == 1
    assert value(samples, "resilience_breaker_state", breaker="questdb", state="open") == 0
    assert value(samples, "resilience_breaker_state", breaker="questdb", state="half_open") == 0
    assert ("resilience_breaker_consecutive_failures", (("breaker", "questdb"),)) in samples
    for name in section_queries():
        age = samples[("resilience_fallback_age_seconds", (("query", name),))]
        assert 0 <= age < 30
    assert value(
        samples, "resilience_query_duration_seconds_count", database="questdb", outcome="ok"
    ) >= len(LOADERS)
    assert value(samples, "resilience_breaker_calls_total", breaker="questdb", kind="successful")


def test_figures_move_when_the_breaker_trips_and_heals(questdb_via_proxy, settings):
    settings.RESILIENCE = {
        **settings.RESILIENCE,
        "FAILURE_THRESHOLD": 2,
        "RECOVERY_TIMEOUT": 0.5,
        "RETRY_ATTEMPTS": 2,
    }
    positions = section("positions")
    assert positions.get().status == "ok"
    before = scrape()

    questdb_via_proxy.set_enabled(False)
    for _ in range(4):
        assert positions.get().status == "degraded"
    assert get_breaker("questdb").public_state == "open"
    tripped = scrape()

    def delta(name, **labels):
        return value(tripped, name, **labels) - value(before, name, **labels)

    assert value(tripped, "resilience_breaker_state", breaker="questdb", state="open") == 1
    assert value(tripped, "resilience_breaker_state", breaker="questdb", state="closed") == 0
    assert delta("resilience_breaker_calls_total", breaker="questdb", kind="failed") == 2
    assert delta("resilience_breaker_calls_total", breaker="questdb", kind="not_permitted") == 2
    assert (
        delta("resilience_retry_attempts_total", breaker="questdb", operation="get_positions") == 2
    )
    assert (
        delta(
            "resilience_breaker_transitions_total",
            breaker="questdb",
            from_state="closed",
            to_state="open",
        )
        == 1
    )
    assert delta("resilience_fallback_served_total", query="positions", status="degraded") == 4
    next_probe = value(
        tripped, "resilience_breaker_next_probe_timestamp_seconds", breaker="questdb"
    )
    assert time.time() - 1 < next_probe < time.time() + 1

    questdb_via_proxy.set_enabled(True)
    time.sleep(0.6)
    assert positions.get().status == "ok"
    healed = scrape()
    assert value(healed, "resilience_breaker_state", breaker="questdb", state="closed") == 1
    for old, new in (("open", "half_open"), ("half_open", "closed")):
        labels = {"breaker": "questdb", "from_state": old, "to_state": new}
        name = "resilience_breaker_transitions_total"
        assert value(healed, name, **labels) - value(before, name, **labels) == 1, (old, new)


def test_several_gunicorn_workers_add_up(tmp_path, redis_server):
    """Two real gunicorn workers: /metrics counts every worker's calls, whichever answers."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "QUESTDASH_VAR_DIR": str(tmp_path),
        "REDIS_URL": redis_server.fresh_database(3),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "METRICS_TOKEN": TOKEN,
        # One request at a time per worker, so each /ht/ makes its own QuestDB call
        # (concurrent ones in one process would share a probe).
        "GUNICORN_THREADS": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # gunicorn.conf.py sets and empties it
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "questdash.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", "2", "--timeout", "30"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/ht/live/", server)
        requests = 12
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda _: get(f"{base}/ht/")[0], range(requests)))
        assert set(statuses) <= {200, 503}  # no copies or beat here: only the calls matter
        pid_files = {p.name.split("_")[-1] for p in (tmp_path / "prometheus").glob("counter_*.db")}
        assert len(pid_files) == 2, f"both workers should have served: {pid_files}"
        seen = set()
        for _ in range(3):  # whichever worker answers the scrape, the sums are the same
            status, text = get(f"{base}/metrics", SCRAPER)
            assert status == 200
            samples = parse(text)
            success = value(
                samples, "resilience_breaker_calls_total", breaker="questdb", kind="successful"
            )
            latency = value(
                samples,
                "resilience_query_duration_seconds_count",
                database="questdb",
                outcome="ok",
            )
            assert (success, latency) == (requests, requests)
            seen.add(success)
            assert value(samples, "resilience_breaker_state", breaker="questdb", state="closed")
        assert len(seen) == 1, f"scrapes disagree: {seen}"
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=20)
    assert PASSWORD not in errors


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {server.stderr.read()}")
        try:
            if get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer {url}")
