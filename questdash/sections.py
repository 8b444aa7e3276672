"""The dashboard's sections: each a named query with a last-known-good copy."""

from __future__ import annotations

from django.conf import settings

from resilience.fallback import CachedFallback

from . import dashboard
from .db.guard import questdb_call
from .db.router import QUESTDB_ALIAS
from .reasons import describe_failure

LOADERS = {
    "active-sessions": dashboard.get_active_sessions,
    "latest-prices": dashboard.get_latest_prices,
    "positions": dashboard.get_positions,
    "price-history": dashboard.get_price_history,
}


def section(slug: str) -> CachedFallback:
    """The cached-fallback query behind one section (KeyError when unknown)."""
    return CachedFallback(
        slug.replace("-", "_"),
        LOADERS[slug],
        breaker_name=QUESTDB_ALIAS,
        runner=questdb_call,
        fresh_for=settings.DASHBOARD_FRESH_FOR,
        dependency_label="QuestDB",
        describe_failure=describe_failure,
    )
