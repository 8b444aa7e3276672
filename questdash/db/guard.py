"""Every road to QuestDB passes here: the "questdb" breaker, retry and deadline.

Callers that do a whole operation (a dashboard read, the refresh task, the
health check) wrap it in ``questdb_call(operation, fn)``: one breaker
outcome, retried as a whole on connection errors. The QuestDB engine guards
each connect and each statement with resilience's database guard
(``resilience.db.guard``), whose time limits it shares with any guarded alias.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from resilience.db.guard import db_call

from .router import QUESTDB_ALIAS

T = TypeVar("T")


def questdb_call(operation: str, fn: Callable[[], T], *, retry: bool = True) -> T:
    """Run fn as one guarded QuestDB operation, or as part of the one already running."""
    return db_call(QUESTDB_ALIAS, operation, fn, retry=retry)
