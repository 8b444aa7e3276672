"""Startup checks for the dashboard's settings: say what is wrong and what to do."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Warning, register

POSITIVE_INTS = [
    "DASHBOARD_ACTIVE_SESSIONS_LIMIT",
    "DASHBOARD_POSITIONS_LIMIT",
    "DASHBOARD_CHART_MINUTES",
]
POSITIVE_NUMBERS = ["DASHBOARD_REFRESH_INTERVAL"]
CULLING_CACHES = {
    "django.core.cache.backends.db.DatabaseCache",
    "django.core.cache.backends.filebased.FileBasedCache",
    "django.core.cache.backends.locmem.LocMemCache",
}


@register()
def check_dashboard_settings(app_configs=None, **kwargs):
    errors = []
    for name in POSITIVE_INTS + POSITIVE_NUMBERS:
        value = getattr(settings, name, None)
        kinds = (int,) if name in POSITIVE_INTS else (int, float)
        if not isinstance(value, kinds) or isinstance(value, bool) or value <= 0:
            errors.append(
                Error(
                    f"{name} is {value!r}; it must be a positive number.",
                    hint=f"Set the {name} environment variable to a number above 0, or unset it.",
                    id="questdash.E001",
                )
            )
    if getattr(settings, "DASHBOARD_FRESH_FOR", 0) < 0:
        errors.append(
            Error(
                f"DASHBOARD_FRESH_FOR is {settings.DASHBOARD_FRESH_FOR!r}; it cannot be negative.",
                hint="Use 0 to query QuestDB on every request, or a few seconds to share results.",
                id="questdash.E002",
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
