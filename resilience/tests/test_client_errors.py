"""The calls Django projects make count and retry by default, as the database's do.

Real calls through requests, httpx, urllib3, redis and psycopg to a refused
port, a server that accepts and never answers, and one that resets every
connection (tcp_servers.py, each in its own process): refused and reset are
UNREACHABLE (counted, retried), no answer in time is TIMEOUT (counted, never
retried), an error status is an answer (not counted).
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
import redis
import requests
import urllib3
from requests.adapters import HTTPAdapter

from resilience.breaker import CircuitBreaker, State
from resilience.errors import (
    Kind,
    OperationFailed,
    classify,
    is_connection_error,
    is_retryable,
)
from resilience.guard import Guard
from resilience.retry import RetryPolicy
from testkit.tcp_servers import refused_port, tcp_server

TIMEOUT = 0.3  # seconds each client waits for the hung server


@pytest.fixture(scope="module")
def ports() -> Iterator[dict[str, int]]:
    with tcp_server("hang") as hang, tcp_server("reset") as reset:
        yield {"refused": refused_port(), "hang": hang, "reset": reset}


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}/"


def no_retries_pool() -> urllib3.PoolManager:
    return urllib3.PoolManager(retries=False, timeout=TIMEOUT)


CLIENTS: dict[str, Callable[[int], Any]] = {
    "requests": lambda port: requests.get(url(port), timeout=TIMEOUT),
    "httpx": lambda port: httpx.get(url(port), timeout=TIMEOUT),
    "urllib3": lambda port: no_retries_pool().request("GET", url(port)),
    "redis": lambda port: redis.Redis(
        port=port, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, retry=None
    ).ping(),
    "psycopg": lambda port: psycopg.connect(
        host="127.0.0.1", port=port, user="u", dbname="d", connect_timeout=2
    ),
}
EXPECTED = {"refused": Kind.UNREACHABLE, "reset": Kind.UNREACHABLE, "hang": Kind.TIMEOUT}


def failure_of(call: Callable[[], Any]) -> BaseException:
    with pytest.raises(Exception) as info:  # each client raises its own
        call()
    return info.value


@pytest.mark.parametrize(
    ("client", "server"),
    # psycopg's own connect timeout is 2 s at the least: its hang is the database
    # guard's (resilience/tests/test_db_guard.py).
    [(c, s) for c in CLIENTS for s in EXPECTED if (c, s) != ("psycopg", "hang")],
)
def test_each_clients_connection_failures_are_classified_like_the_databases(ports, client, server):
    exc = failure_of(lambda: CLIENTS[client](ports[server]))
    kind = EXPECTED[server]
    assert classify(exc) is kind, f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
    assert is_connection_error(exc)
    assert is_retryable(exc) == (kind is Kind.UNREACHABLE)


def test_a_read_timeout_that_requests_wraps_in_a_connection_error_is_a_timeout(ports):
    """A retrying adapter turns urllib3's ReadTimeoutError into requests' ConnectionError."""
    session = requests.Session()
    retries = urllib3.Retry(total=1, read=1, connect=0, backoff_factor=0)
    session.mount("http://", HTTPAdapter(max_retries=retries))
    exc = failure_of(lambda: session.get(url(ports["hang"]), timeout=TIMEOUT))
    assert isinstance(exc, requests.ConnectionError)
    assert classify(exc) is Kind.TIMEOUT


class Answers500(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503 if self.path == "/busy" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers500)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_an_error_status_is_an_answer_not_an_outage(http_server, redis_url):
    """raise_for_status() and a Redis error reply say the server answered: not counted."""
    for exc in (
        failure_of(lambda: requests.get(url(http_server) + "busy", timeout=2).raise_for_status()),
        failure_of(lambda: httpx.get(url(http_server) + "busy", timeout=2).raise_for_status()),
        failure_of(lambda: redis.Redis.from_url(redis_url).execute_command("NO-SUCH-COMMAND")),
    ):
        assert not is_connection_error(exc), f"{type(exc).__name__}: {exc}"
    retrying = urllib3.PoolManager(retries=urllib3.Retry(total=1, status_forcelist=[503]))
    gave_up = failure_of(lambda: retrying.request("GET", url(http_server) + "busy"))
    assert classify(gave_up) is Kind.ANSWERED  # MaxRetryError of too many 503s


FAST_RETRY = RetryPolicy(attempts=3, waits=(0.0,))


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_refused_calls_through_http_clients_are_retried_and_open_the_breaker(ports, client):
    """Seven refused calls each left both breakers closed (issue 19); now five open it."""
    breaker = CircuitBreaker(client, failure_threshold=5, recovery_timeout=60)
    attempts = []

    def call() -> Any:
        attempts.append(1)
        return CLIENTS[client](ports["refused"])

    guard = Guard("fetch", breaker=breaker, retry=FAST_RETRY, deadline=10)
    for _ in range(5):
        with pytest.raises(OperationFailed) as info:
            guard.call(call)
        assert info.value.connection_error
    assert len(attempts) == 15  # every refused call retried twice
    assert breaker.state is State.OPEN
    assert "5 consecutive failures" in breaker.record.reason


def test_a_hung_http_server_is_counted_once_per_call_and_never_retried(ports):
    breaker = CircuitBreaker("hung", failure_threshold=5, recovery_timeout=60)
    attempts = []

    def call() -> Any:
        attempts.append(1)
        return requests.get(url(ports["hang"]), timeout=TIMEOUT)

    guard = Guard("fetch", breaker=breaker, retry=FAST_RETRY, deadline=10)
    for _ in range(2):  # TIMEOUT_THRESHOLD: a timeout weighs more than a refusal
        with pytest.raises(OperationFailed):
            guard.call(call)
    assert len(attempts) == 2
    assert breaker.state is State.OPEN


def test_no_client_library_is_imported_to_classify_an_error():
    code = (
        "import sys; from resilience.errors import classify; "
        "assert classify(ConnectionRefusedError()) is not None; "
        "assert classify(ValueError()) is None; "
        "print(sorted(m for m in ('requests', 'httpx', 'urllib3', 'redis', 'psycopg', "
        "'psycopg_pool') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
