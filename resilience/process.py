"""Who this process is, as the shared history and the breaker page name it.

A decision in the shared history says who made it ("web pid 812@host-1"),
and the breaker page lists the processes that share a store with their role.
The role is what an operator thinks in: a web worker or a Celery worker.
It is read from ``RESILIENCE["PROCESS_ROLE"]`` when set, and otherwise from
the program that runs the process: gunicorn, uWSGI, uvicorn, daphne,
hypercorn or ``manage.py runserver`` make a web process, ``celery`` a Celery
one; anything else is named after its program ("pytest", "manage.py
breaker"). Only web and Celery processes (or a role set in settings) report
to the fleet: a one-off command is not part of it.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import threading
from dataclasses import dataclass

WEB = "web"
CELERY = "celery"
WEB_SERVERS = frozenset({"gunicorn", "uwsgi", "uvicorn", "daphne", "hypercorn", "waitress-serve"})
REPORTING_ROLES = frozenset({WEB, CELERY})


def _program(argv: list[str]) -> str:
    if not argv or not argv[0]:
        return "python"
    path = argv[0]
    name = os.path.basename(path)
    if name == "__main__.py":  # python -m gunicorn, python -m celery
        name = os.path.basename(os.path.dirname(path))
    return name.removesuffix(".exe")


def detect_role(argv: list[str] | None = None) -> str:
    """The role a program's command line implies: "web", "celery" or the program's name."""
    argv = list(sys.argv if argv is None else argv)
    program = _program(argv)
    if program in WEB_SERVERS:
        return WEB
    if program == CELERY:
        return CELERY
    if program in ("manage.py", "django-admin"):
        command = argv[1] if len(argv) > 1 else ""
        return WEB if command == "runserver" else f"{program} {command}".strip()
    return program


def configured_role() -> str | None:
    """``RESILIENCE["PROCESS_ROLE"]``, or None when unset (or settings are not configured)."""
    try:
        from .conf import get_config

        role = get_config().get("PROCESS_ROLE")
    except Exception:  # noqa: BLE001 - no settings (a bare script): detect from the program
        return None
    return str(role) if role else None


def role() -> str:
    return configured_role() or detect_role()


def reports_to_fleet() -> bool:
    """Whether this process joins the fleet's figures: web and Celery workers, or a set role."""
    return configured_role() is not None or detect_role() in REPORTING_ROLES


@dataclass(frozen=True)
class Identity:
    """This process as the fleet knows it; a forked child is a new one (new pid, new id)."""

    id: str  # unique per process start: pids are reused
    host: str
    pid: int
    role: str

    @property
    def actor(self) -> str:
        return f"{self.role} pid {self.pid}@{self.host}"


_identity: Identity | None = None
_lock = threading.Lock()


def identity() -> Identity:
    """This process's identity (made once per process, again after a fork)."""
    global _identity
    found = _identity
    if found is None or found.pid != os.getpid():
        with _lock:
            found = _identity
            if found is None or found.pid != os.getpid():
                found = _identity = Identity(
                    secrets.token_hex(6), socket.gethostname(), os.getpid(), role()
                )
    return found


def forget_identity() -> None:
    """Settings changed (a test set PROCESS_ROLE): name the process again on next use."""
    global _identity
    _identity = None


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
