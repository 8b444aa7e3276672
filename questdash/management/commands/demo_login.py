"""`manage.py demo_login`: the local demo's staff login, printed once per run.

Only the README's run command calls this; settings and migrations never make
a user. The password is new on every run, so an old terminal log is no key.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

# Every page the README shows: the dashboard, the breaker page (and its buttons), and
# QuestDB's tables in the admin (read-only for everyone: viewing is all there is).
DEMO_PERMISSIONS = [
    ("questdash", "view_dashboard"),
    ("resilience", "view_circuitbreaker"),
    ("resilience", "control_circuitbreaker"),
    ("questdash", "view_price"),
    ("questdash", "view_position"),
    ("questdash", "view_tradingsession"),
]


class Command(BaseCommand):
    help = "Create or refresh the demo staff login and print it."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")

    def handle(self, *args, username: str, **options):
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username=username)
        user.is_staff = True
        user.is_active = True
        user.set_password(password)
        user.save()
        wanted = Q()
        for app_label, codename in DEMO_PERMISSIONS:
            wanted |= Q(content_type__app_label=app_label, codename=codename)
        permissions = list(Permission.objects.filter(wanted))
        if len(permissions) != len(DEMO_PERMISSIONS):
            found = {(p.content_type.app_label, p.codename) for p in permissions}
            missing = ", ".join(f"{a}.{c}" for a, c in DEMO_PERMISSIONS if (a, c) not in found)
            raise CommandError(f"Permissions missing: {missing}. Run `manage.py migrate` first.")
        user.user_permissions.set(permissions)
        self.stdout.write(self.style.SUCCESS(f"Demo staff login: {username} / {password}"))
