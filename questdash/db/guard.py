"""Every road to QuestDB passes here: the "questdb" breaker, retry and deadline.

Callers that do a whole operation (a dashboard read, the refresh task, the
health check) wrap it in `questdb_call(operation, fn)`: one breaker outcome,
retried as a whole on connection errors, so each attempt opens a fresh
cursor on a fresh connection. The engine itself guards each connect and
each statement; inside an operation that is already guarded, resilience's
guard just runs them (nothing is counted twice), and the engine adds the
client-side socket deadline.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from resilience.guard import guarded

from .router import QUESTDB_ALIAS

T = TypeVar("T")


def questdb_call(operation: str, fn: Callable[[], T], *, retry: bool = True) -> T:
    """Run fn as one guarded QuestDB operation, or as part of the one already running."""
    return guarded(operation, fn, breaker_name=QUESTDB_ALIAS, retry=retry)


@contextlib.contextmanager
def socket_deadline(fileno: int, seconds: float) -> Iterator[None]:
    """Shut the connection's socket if the server has not answered in time.

    A paused (SIGSTOP) QuestDB still accepts TCP and never answers; the
    server-side statement_timeout cannot fire and psycopg waits for ever.
    Shutting the socket from a timer wakes psycopg with an OperationalError.
    """

    def expire() -> None:
        # OSError: the connection is already closed, nothing left to wake.
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fileno)) as sock:
            sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
