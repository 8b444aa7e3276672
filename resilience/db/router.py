"""Reads go to a replica while its breaker lets calls through, to the primary while it is open.

    DATABASE_ROUTERS = ["resilience.db.router.ReplicaRouter"]   # last, after your own
    RESILIENCE = {"READ_REPLICAS": ["replica"], "PRIMARY_DATABASE": "default"}

Each replica is a guarded alias (``resilience.db.backends.postgresql``), so
its breaker counts its failures. Closed: reads go to the first replica whose
breaker is closed. Open: to the primary, at no cost (no connection is tried).
Half-open: the router makes the probe itself, one ``SELECT 1`` bounded by the
connect timeout, and reads from the replica if it answered, from the primary
if not (or if another process holds the probe). A read therefore never fails
because a replica's breaker refused it; the reads that failed before the
breaker opened are the ones that counted towards opening it.

Writes and migrations are left to the primary: a replica is never migrated,
and objects read from a replica relate freely to the primary's.
"""

from __future__ import annotations

from typing import Any

from django.db import connections

from ..conf import get_config
from ..errors import GuardedCallError
from ..guard import guarded
from ..registry import get_breaker
from ..state import State
from .guard import connect_seconds


def replicas() -> tuple[str, ...]:
    return tuple(get_config()["READ_REPLICAS"])


def primary() -> str:
    return get_config()["PRIMARY_DATABASE"]


def readable(alias: str) -> bool:
    """Whether a read may go to replica ``alias`` now (probing it when half-open)."""
    state = get_breaker(alias).state
    if state is State.CLOSED:
        return True
    if state is State.OPEN:
        return False
    probe = f"{alias}.probe"
    try:
        guarded(probe, lambda: _select_one(alias), breaker_name=alias, retry=False,
                deadline=connect_seconds(alias))  # fmt: skip
    except GuardedCallError:
        return False
    return True


def _select_one(alias: str) -> None:
    connection = connections[alias]
    # A probe is a fresh connect: a connection kept from before the outage is likely dead.
    connection.close_after_connection_error()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


class ReplicaRouter:
    def db_for_read(self, model: Any, **hints: Any) -> str:
        for alias in replicas():
            if readable(alias):
                return alias
        return primary()

    def db_for_write(self, model: Any, **hints: Any) -> None:
        return None  # the primary, or whatever a router before this one says

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        ours = {primary(), *replicas()}
        return True if {obj1._state.db, obj2._state.db} <= ours else None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if db in replicas() else None
