"""The app's optional parts, and the extra of django-resilience that installs each.

The core (breakers, stores, guard, fallback, middleware, admin page, command)
needs Django and tenacity only. The rest needs a library a project may not
have: importing such a part without it raises ``MissingExtra`` (an
``ImportError``) naming the extra to install, and the system check
``resilience.E020`` names it before that, from what the settings use.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

DISTRIBUTION = "django-resilience"


@dataclass(frozen=True)
class Extra:
    name: str  # pip install 'django-resilience[<name>]'
    module: str  # what it provides, as imported
    package: str  # its distribution on the package index
    used_for: str

    @property
    def install(self) -> str:
        return f"pip install '{DISTRIBUTION}[{self.name}]'"

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


EXTRAS = {
    extra.name: extra
    for extra in (
        Extra("redis", "redis", "redis", "a breaker store shared through Django's RedisCache"),
        Extra("health", "health_check", "django-health-check", "resilience.health"),
        Extra("metrics", "prometheus_client", "prometheus-client", "resilience.metrics"),
        Extra("celery", "celery", "celery", "Celery workers reporting to the breaker page"),
    )
}


class MissingExtra(ImportError):
    """An optional part was imported without the library it needs."""


def missing_message(extra: Extra, part: str) -> str:
    return f"{part} needs {extra.package}, which is not installed: {extra.install}"


def missing(name: str, part: str) -> MissingExtra:
    """The error for ``part`` imported without extra ``name``'s library: raise it from the
    ``ModuleNotFoundError``, so that the traceback says what to install."""
    extra = EXTRAS[name]
    return MissingExtra(missing_message(extra, part), name=extra.module)
