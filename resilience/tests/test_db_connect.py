"""A connect held to its budget to the millisecond, and closed the moment it is given up."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from resilience.db.connect import BoundedConnection, connect_within
from testkit.tcp_servers import refused_port, tcp_server

SLACK = 0.15


class GaveUp(TimeoutError):
    pass


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def other_threads() -> set[threading.Thread]:
    """The threads running, but the watchdog's (one per process, started at first use)."""
    return {t for t in threading.enumerate() if t.name != "resilience-watchdog"}


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Only reference counting frees anything: what the collector would free counts as open."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def connect(port: int) -> BoundedConnection:
    return BoundedConnection.connect(
        host="127.0.0.1", port=port, user="u", dbname="d", connect_timeout=5
    )


def test_a_hung_connect_gives_up_at_its_budget_and_closes_its_socket_at_once(no_gc):
    with tcp_server("hang") as port:
        descriptors, threads = open_descriptors(), other_threads()
        started = time.monotonic()
        with pytest.raises(GaveUp) as info:
            connect_within(lambda: connect(port), 0.1, timeout=lambda s: GaveUp(f"{s} s"))
        took = time.monotonic() - started
        assert str(info.value) == "0.1 s"
        assert 0.1 <= took < 0.1 + SLACK
        assert open_descriptors() == descriptors  # no socket waits for the collector
        assert other_threads() == threads  # and no thread waits on for psycopg's 2 s


def test_a_refused_connect_is_psycopgs_own_error_not_a_timeout(no_gc):
    descriptors = open_descriptors()
    with pytest.raises(psycopg.OperationalError, match="refused"):
        connect_within(lambda: connect(refused_port()), 1.0, timeout=GaveUp)
    assert open_descriptors() == descriptors


def test_outside_connect_within_a_bounded_connection_is_psycopgs_connect():
    """No budget set: psycopg's own connect_timeout (here its 2 s floor) is the only one."""
    with tcp_server("hang") as port:
        started = time.monotonic()
        with pytest.raises(psycopg.errors.ConnectionTimeout):
            BoundedConnection.connect(
                host="127.0.0.1", port=port, user="u", dbname="d", connect_timeout=1
            )
        assert time.monotonic() - started >= 2.0
