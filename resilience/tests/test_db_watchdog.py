"""The watchdog that shuts a database call's socket at its deadline (resilience/db/watchdog.py)."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import pytest

from resilience.clock import FakeClock
from resilience.db.watchdog import Watchdog

SLACK = 0.15  # the watchdog fires within milliseconds; this allows for a loaded machine


@pytest.fixture
def sockets() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    pairs = [socket.socketpair() for _ in range(2)]
    yield pairs
    for pair in pairs:
        for sock in pair:
            sock.close()


def shut_after(sock: socket.socket, started: float) -> float:
    """Block on recv until the watchdog shuts the socket; the seconds since ``started``."""
    assert sock.recv(1) == b""
    return time.monotonic() - started


def is_shut(sock: socket.socket) -> bool:
    """Readable with nothing to read: shut (a live, quiet socket is not readable)."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""


def test_on_a_fake_clock_a_socket_is_shut_when_its_deadline_comes_and_not_before(sockets):
    clock = FakeClock()
    watchdog = Watchdog(clock, thread=False)
    (mine, _), (other, _) = sockets
    ticket = watchdog.watch(mine.fileno(), 5.0)
    released = watchdog.watch(other.fileno(), 1.0)
    assert watchdog.fire_due() == clock.monotonic() + 1.0  # the next one due
    assert watchdog.release(released) is False  # the call ended in time
    clock.advance(4.5)
    assert watchdog.fire_due() == clock.monotonic() + 0.5
    assert not is_shut(mine) and not is_shut(other)
    clock.advance(0.5)
    watchdog.fire_due()
    assert is_shut(mine) and not is_shut(other)
    assert watchdog.release(ticket) is True  # the caller reports a timeout


def test_the_watchdog_shuts_a_socket_at_its_deadline(sockets):
    watchdog = Watchdog()
    mine, _ = sockets[0]
    started = time.monotonic()
    ticket = watchdog.watch(mine.fileno(), 0.2)
    took = shut_after(mine, started)
    assert 0.2 <= took < 0.2 + SLACK
    assert watchdog.release(ticket) is True  # it says so: the caller reports a timeout


def test_a_released_statement_is_never_shut(sockets):
    watchdog = Watchdog()
    mine, theirs = sockets[0]
    assert watchdog.release(watchdog.watch(mine.fileno(), 0.05)) is False
    time.sleep(0.15)
    theirs.sendall(b"x")
    assert mine.recv(1) == b"x"


def test_an_earlier_deadline_wakes_a_watchdog_sleeping_on_a_later_one(sockets):
    watchdog = Watchdog()
    later, _ = sockets[0]
    sooner, _ = sockets[1]
    late_ticket = watchdog.watch(later.fileno(), 5.0)
    time.sleep(0.05)  # the thread now sleeps until the 5 s deadline
    started = time.monotonic()
    watchdog.watch(sooner.fileno(), 0.1)
    assert 0.1 <= shut_after(sooner, started) < 0.1 + SLACK
    assert watchdog.release(late_ticket) is False
