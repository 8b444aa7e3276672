"""`manage.py breaker status|reset|open|close [NAME]`: the breaker page's actions from a shell.

    manage.py breaker status                 # every breaker; exit status 1 while one is open
    manage.py breaker open questdb --reason "QuestDB upgrade, back at 14:00"
    manage.py breaker reset questdb --json   # one JSON object, for scripts

``status`` exits 1 while a breaker is open or half-open (not yet healed),
so a script can wait on it: ``until manage.py breaker status questdb; do
sleep 5; done``. Actions are the admin's own (``resilience.control``): the
shared history names "manage.py <login>@<host>" as the actor, and each is
read back from the shared store after writing. One that did not land (the
store hangs or is down) exits 2 and says so; only one that landed goes to
the admin log, as a system action under the inactive user "manage.py" (the
admin log needs a user; that one cannot log in), when the admin is installed.

With the in-process store (``LocalStore``, the default) an action refuses
to run: it would change this short-lived process only, never the processes
that serve. The breakers listed are those named in settings and those any
process of the fleet reports to the shared store.
"""

from __future__ import annotations

import getpass
import json
import socket
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from resilience.breaker import CircuitBreaker
from resilience.control import ActionResult, apply_action, clean_reason, known_breakers
from resilience.fleet import current_outage
from resilience.models import CircuitBreaker as CircuitBreakerModel
from resilience.registry import get_breaker
from resilience.state import State

SYSTEM_USERNAME = "manage.py"
VERBS = {"reset": "reset", "open": "force-open", "close": "force-closed"}
NOT_HEALED = (State.OPEN, State.HALF_OPEN)


def command_actor() -> str:
    """Who acts from a shell: "manage.py alice@web-1"."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        login = "unknown"
    return f"manage.py {login}@{socket.gethostname()}"


NOT_LANDED = 2  # the exit status of an action that did not reach the shared store


def system_user() -> Any:
    """The admin log's user for actions from a shell: inactive, no usable password.

    Found by the user model's own ``USERNAME_FIELD``: a custom model may have no
    ``username``. A model that cannot make such a user (required fields without
    defaults) gets a ``CommandError`` saying so, before anything is done.
    """
    model = get_user_model()
    fields = {f.name for f in model._meta.get_fields()}
    defaults = {key: False for key in ("is_active", "is_staff") if key in fields}
    try:
        user, created = model.objects.get_or_create(
            **{model.USERNAME_FIELD: SYSTEM_USERNAME}, defaults=defaults
        )
    except (DatabaseError, TypeError, ValueError) as exc:
        raise CommandError(
            f"The admin log needs a user, and {model._meta.label} could not make one named "
            f"{SYSTEM_USERNAME!r} ({exc}). Create one with "
            f"{model.USERNAME_FIELD}={SYSTEM_USERNAME!r}, inactive, and run this again."
        ) from exc
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def admin_log_user() -> Any | None:
    """The user for the admin log, or None when the admin (and so its log) is not installed."""
    if not apps.is_installed("django.contrib.admin"):
        return None
    return system_user()


class Command(BaseCommand):
    help = "Show, reset, force open or force close circuit breakers (as the admin's page does)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("verb", choices=["status", *VERBS], help="what to do")
        parser.add_argument("name", nargs="?", help="the breaker (status: all when omitted)")
        parser.add_argument("--reason", default="", help="why: kept in the history and the log")
        parser.add_argument("--json", action="store_true", help="one JSON object on stdout")

    def handle(self, *args: Any, verb: str, name: str | None, **options: Any) -> None:
        known = {breaker.name: breaker for breaker in known_breakers()}
        if name is not None and name not in known:
            raise CommandError(
                f"No breaker {name!r}: known are {', '.join(sorted(known)) or 'none'}."
            )
        if verb == "status":
            self.status([known[name]] if name else list(known.values()), options["json"])
            return
        if name is None:
            if len(known) != 1:
                raise CommandError(
                    f"Name the breaker to {verb}: one of {', '.join(sorted(known))}."
                )
            name = next(iter(known))
        breaker = get_breaker(name)
        if not breaker.store.shared:
            raise CommandError(
                f"Not done: breaker {name!r} keeps its state in this process "
                f"({type(breaker.store).__name__}), and this command is a process of its own: "
                "it would change nothing in the processes that serve. Use the admin's breaker "
                "page, or share the state: RESILIENCE['STORE'] = "
                "'resilience.stores.CacheStore' with a cache every process reaches (Redis)."
            )
        self.act(breaker, VERBS[verb], clean_reason(options["reason"]), options["json"])

    def status(self, breakers: list[CircuitBreaker], as_json: bool) -> None:
        reports = []
        for breaker in breakers:
            breaker.store.sync(breaker.name, force=True)  # the store's word, not a stale mirror
            snapshot = breaker.snapshot()
            outage = current_outage(breaker.store.history(breaker.name, 200))
            report = snapshot.as_dict()
            report["open_for"] = (
                None if outage is None else round(outage.lasted(snapshot.taken_at), 1)
            )
            report["failed_probes"] = None if outage is None else len(outage.probes)
            reports.append((snapshot, report))
        if as_json:
            self.stdout.write(json.dumps({"breakers": [r for _, r in reports]}, indent=2))
        else:
            for snapshot, report in reports:
                self.stdout.write(self._line(snapshot, report))
        if any(snapshot.state in NOT_HEALED for snapshot, _ in reports):
            raise SystemExit(1)

    def _line(self, snapshot: Any, report: dict[str, Any]) -> str:
        state = snapshot.public_state.upper()
        text = f"{snapshot.name}: {state}"
        if snapshot.forced:
            text += f" (forced by {snapshot.actor or 'an operator'})"
        if report["open_for"] is not None:
            text += f" for {report['open_for']:g} s since {report['opened_at']}"
            if report["failed_probes"]:
                text += f", {report['failed_probes']} probe(s) failed"
        if snapshot.state is not State.CLOSED and snapshot.next_probe_at is not None:
            text += f"; next probe at {report['next_probe_at']}"
        if snapshot.state is State.CLOSED:
            text += f"; {snapshot.failure_count} of {snapshot.failure_threshold} failures"
        if snapshot.reason and snapshot.reason != "initial":
            text += f". Why: {snapshot.reason}"
        if snapshot.last_error and snapshot.state is not State.CLOSED:
            text += f". Last error: {snapshot.last_error_type}: {snapshot.last_error}"
        return text

    def act(self, breaker: CircuitBreaker, action: str, reason: str, as_json: bool) -> None:
        actor = command_actor()
        user = admin_log_user()  # first: a user model that cannot log must stop us before acting
        result = apply_action(breaker, action, actor=actor, reason=reason)
        if result.landed and user is not None:
            self.log(user, result, actor)
        if as_json:
            self.stdout.write(json.dumps({
                "breaker": breaker.name,
                "action": action,
                "label": result.label,
                "landed": result.landed,
                "before": result.before,
                "after": result.after,
                "forced": breaker.forced,
                "reason": reason or None,
                "actor": actor,
                "message": result.message,
                "admin_log": result.landed and user is not None,
            }))  # fmt: skip
        elif result.landed:
            self.stdout.write(f"{breaker.name}: {result.message}")
        if not result.landed:
            self.stderr.write(f"{breaker.name}: {result.message}")
            raise SystemExit(NOT_LANDED)

    @staticmethod
    def log(user: Any, result: ActionResult, actor: str) -> None:
        from django.contrib.admin.models import CHANGE, LogEntry

        LogEntry.objects.log_actions(
            user_id=user.pk,
            queryset=[CircuitBreakerModel(name=result.breaker)],
            action_flag=CHANGE,
            change_message=f"{result.breaker}: {result.message} ({actor})",
            single_object=True,
        )
