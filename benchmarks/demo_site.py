"""Shared by the benchmarks that need the site: Django on the test settings
(QuestDB on the test ports), a started and seeded QuestDB, a staff client.

Importing this module sets Django up; import it before anything from Django.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("DJANGO_LOG_LEVEL", "CRITICAL")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Permission  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from testkit.questdb import start_questdb  # noqa: E402


def staff_client() -> Client:
    """QuestDB up and seeded, the Django tables made, and a logged-in dashboard viewer."""
    settings.DASHBOARD_FRESH_FOR = 0  # every request asks QuestDB
    start_questdb()
    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    setup_test_environment()
    user, _ = get_user_model().objects.get_or_create(username="bench", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))  # as the API asks
    client = Client()
    client.force_login(user)
    return client
