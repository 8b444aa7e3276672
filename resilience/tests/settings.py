"""Minimal settings to run the app's own tests without the questdash project.

    DJANGO_SETTINGS_MODULE=resilience.tests.settings pytest resilience/tests

(The Redis tests still need the ``redis_server`` / ``redis_url`` fixtures of
the repository's root conftest.py.)
"""

SECRET_KEY = "resilience-tests-only"
INSTALLED_APPS = ["resilience"]
DATABASES: dict = {}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
USE_TZ = True
RESILIENCE: dict = {}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "resilience.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "loggers": {"resilience": {"handlers": ["console"], "level": "WARNING"}},
}
