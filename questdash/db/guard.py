"""Every road to QuestDB passes here: the "questdb" breaker, retry and deadline.

Callers that do a whole operation (a dashboard read, the refresh task, the
health check) wrap it in `questdb_call(operation, fn)`: one breaker outcome,
retried as a whole on connection errors, so each attempt opens a fresh
cursor on a fresh connection. The engine itself guards each connect and
each statement; inside an operation that is already guarded it only adds
the client-side socket deadline, so nothing is counted twice.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TypeVar

from resilience.guard import guarded

from .router import QUESTDB_ALIAS

T = TypeVar("T")

_inside_operation: ContextVar[bool] = ContextVar("questdb_inside_operation", default=False)


def questdb_call(operation: str, fn: Callable[[], T], *, retry: bool = True) -> T:
    """Run fn as one guarded QuestDB operation, or as part of the one already running."""
    if _inside_operation.get():
        return fn()
    token = _inside_operation.set(True)
    try:
        return guarded(operation, fn, breaker_name=QUESTDB_ALIAS, retry=retry)
    finally:
        _inside_operation.reset(token)


@contextlib.contextmanager
def socket_deadline(fileno: int, seconds: float) -> Iterator[None]:
    """Shut the connection's socket if the server has not answered in time.

    A paused (SIGSTOP) QuestDB still accepts TCP and never answers; the
    server-side statement_timeout cannot fire and psycopg waits for ever.
    Shutting the socket from a timer wakes psycopg with an OperationalError.
    """

    def expire() -> None:
        with contextlib.suppress(OSError):  # already closed: nothing to wake
            with socket.socket(fileno=os.dup(fileno)) as sock:
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
