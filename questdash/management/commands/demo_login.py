"""`manage.py demo_login`: the local demo's staff login, printed once per run.

Only the README's run command calls this; settings and migrations never make
a user. The password is new on every run, so an old terminal log is no key.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand

DEMO_PERMISSIONS = ["view_dashboard", "view_circuitbreaker", "control_circuitbreaker"]


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
        user.user_permissions.set(Permission.objects.filter(codename__in=DEMO_PERMISSIONS))
        self.stdout.write(self.style.SUCCESS(f"Demo staff login: {username} / {password}"))
