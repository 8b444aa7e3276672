"""Who may read health detail and metrics: a staff session, or a configured bearer token.

Health failures carry hosts, ports, driver errors and commands; metrics carry
the dependency's names and the site's traffic. Probes and scrapers that need
them send ``Authorization: Bearer <token>``, where the token is the value of a
Django setting (``HEALTH_TOKEN``, ``METRICS_TOKEN``; unset: no token works);
a staff session sees them too. Everyone else gets what a monitor needs and an
attacker does not: each health check's name and status, and no metrics. A
token is compared in constant time and never read from the query string,
which lands in access logs. ``resilience.health.DisclosingHealthCheckView``
and ``resilience.metrics.MetricsView`` ask here.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.http import HttpRequest


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if the request has one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def token_matches(request: HttpRequest, setting: str) -> bool:
    """The request carries the token that ``settings.<setting>`` holds (never when unset)."""
    expected = getattr(settings, setting, "") or ""
    given = bearer_token(request)
    return bool(expected and given) and hmac.compare_digest(given.encode(), expected.encode())


def is_staff(user: Any) -> bool:
    return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False))


def may_see_detail(request: HttpRequest, setting: str) -> bool:
    """A staff session or the token of ``setting`` (sync views)."""
    return token_matches(request, setting) or is_staff(getattr(request, "user", None))


async def amay_see_detail(request: HttpRequest, setting: str) -> bool:
    """``may_see_detail`` for async views, which must not load the session synchronously."""
    if token_matches(request, setting):
        return True
    return hasattr(request, "auser") and is_staff(await request.auser())
