"""The fleet's settings with the story's naive design in place of the guard."""

from tests.fleet_settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "benchmarks.naive"]  # noqa: F405
DATABASES["questdb"]["ENGINE"] = "benchmarks.naive"  # noqa: F405
