"""Startup checks for the dashboard's settings: say what is wrong and what to do."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Warning, register

from .env import NUMBERS

CULLING_CACHES = {
    "django.core.cache.backends.db.DatabaseCache",
    "django.core.cache.backends.filebased.FileBasedCache",
    "django.core.cache.backends.locmem.LocMemCache",
}


@register()
def check_dashboard_settings(app_configs=None, **kwargs) -> list[Error]:
    """The numeric settings, however they were set, within the ranges their variables have."""
    errors = []
    for name, rule in NUMBERS.items():
        value = getattr(settings, name, None)
        if value is None:
            continue  # an environment variable only (RESILIENCE_*: the app checks its own)
        if problem := rule.problem(value):
            errors.append(
                Error(
                    f"{name} is {value!r}: {problem}.",
                    hint=f"Set the {name} environment variable to a valid value, or unset it.",
                    id="questdash.E001",
                )
            )
    return errors


@register()
def check_last_good_copies_are_not_culled(app_configs=None, **kwargs):
    """Last-known-good copies are data: a cache that culls them turns an outage into errors."""
    cache = settings.CACHES.get("default", {})
    max_entries = cache.get("OPTIONS", {}).get("MAX_ENTRIES", 300)
    if cache.get("BACKEND") in CULLING_CACHES and max_entries < 10_000:
        return [
            Warning(
                f"The default cache culls at MAX_ENTRIES={max_entries}: last-known-good "
                "dashboard copies can be deleted and the next outage shows errors.",
                hint="Raise CACHES['default']['OPTIONS']['MAX_ENTRIES'] (questdash uses "
                "1,000,000) or use Redis with a noeviction or volatile-* maxmemory-policy.",
                id="questdash.W001",
            )
        ]
    return []
