"""Given-up connects leave nothing behind: descriptors and threads stay flat over 10,000 calls.

Issue 17: with the breaker forced closed and a server that accepted but
never answered, 600 calls left 374 descriptors open (328 sockets), freed
only by a full garbage collection. Here 10,000 guarded connects of a
guarded alias go to a refused port, a resetting server and a hung one
(tcp_servers.py, in processes of their own), with the collector off so that
only what is really closed counts as closed. ``/proc/self/fd`` and the
threads are counted as the calls go.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from resilience.errors import OperationFailed
from resilience.registry import get_breaker
from testkit.postgres import database_aliases, guarded_alias
from testkit.tcp_servers import refused_port, tcp_server

CALLS = {"refused": 4000, "reset": 4000, "hang": 2000}  # 10,000 in all
CLIENTS = 4  # threads making calls side by side, each with its own connection
SAMPLES = 10  # counts taken over each server's calls
FDS = "/proc/self/fd"


@pytest.fixture
def quick(settings) -> None:
    """A hung connect given up on after 10 ms, one attempt a call, every call let through."""
    settings.RESILIENCE = {
        "STORE": "resilience.stores.LocalStore",
        "CONNECT_TIMEOUT": 0.01,
        "RETRY_ATTEMPTS": 1,
    }


@pytest.fixture
def unblocked(django_db_blocker) -> Iterator[None]:
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def quiet() -> Iterator[None]:
    """10,000 failures need no traceback each (the suite logs everything at DEBUG)."""
    logger = logging.getLogger("resilience")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def connect_once(alias: str) -> None:
    try:
        connections[alias].ensure_connection()
    except OperationFailed as exc:
        assert exc.connection_error, exc
    else:
        raise AssertionError(f"{alias} connected to a server that cannot take connections")
    finally:
        connections.close_all()  # this thread's wrappers, as a request's end does


def counts() -> tuple[int, int]:
    return len(os.listdir(FDS)), threading.active_count()


@pytest.mark.usefixtures("quick", "unblocked", "quiet")
def test_descriptors_and_threads_stay_flat_over_10_000_given_up_connects():
    seen: dict[str, list[tuple[int, int]]] = {}
    gc.collect()
    gc.disable()
    try:
        with (
            tcp_server("hang") as hang,
            tcp_server("reset") as reset,
            ThreadPoolExecutor(CLIENTS) as pool,
        ):
            ports = {"refused": refused_port(), "reset": reset, "hang": hang}
            with database_aliases(**{name: guarded_alias(port) for name, port in ports.items()}):
                for name in ports:
                    get_breaker(name).force_closed("issue 17: every call connects")
                    list(pool.map(connect_once, [name] * 50))  # warm: threads, the watchdog
                    samples = [counts()]
                    step = CALLS[name] // SAMPLES
                    for _ in range(SAMPLES):
                        list(pool.map(connect_once, [name] * step))
                        samples.append(counts())
                    seen[name] = samples
    finally:
        gc.enable()
    report = {name: (s[0], s[-1], max(fd for fd, _ in s)) for name, s in seen.items()}
    print(f"descriptors and threads (first, last, most descriptors): {report}")
    for name, samples in seen.items():
        descriptors = [fd for fd, _ in samples]
        threads = {thread for _, thread in samples}
        assert max(descriptors) - descriptors[0] <= CLIENTS, (name, descriptors)
        assert descriptors[-1] <= descriptors[0], (name, descriptors)
        assert len(threads) == 1, (name, samples)
