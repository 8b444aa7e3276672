"""The staff dashboard, served by the admin as the Dashboard entry's page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest

from resilience.admin import PageAdmin
from resilience.fallback import read_ahead
from resilience.registry import get_breaker

from . import questdb_admin  # noqa: F401 - registers QuestDB's tables, read-only
from .chart import price_chart
from .db.router import QUESTDB_ALIAS
from .models import Dashboard
from .reasons import in_words
from .sections import section

TITLES = {
    "active-sessions": "Active sessions",
    "latest-prices": "Latest prices",
    "positions": "Positions",
    "price-history": "Recent prices",
}


def describe_age(seconds: float) -> str:
    """'3 minutes old': the unit staff read at a glance."""
    seconds = max(0, int(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} old"
    return f"{seconds} second{'s' if seconds != 1 else ''} old"


@admin.register(Dashboard)
class DashboardAdmin(PageAdmin):
    page_template = "questdash/dashboard.html"
    page_title = "QuestDB dashboard"

    def page_context(self, request: HttpRequest) -> dict:
        sections = []
        outage = None  # once one section finds QuestDB unreachable, the rest use their copies
        queries = {slug: section(slug) for slug in TITLES}
        read_ahead(list(queries.values()))  # every copy in one round trip to the cache
        for slug, title in TITLES.items():
            query = queries[slug]
            envelope = query.serve_copy(outage) if outage else query.get()
            if envelope.unreachable:
                outage = envelope.reason
            sections.append(
                {
                    "slug": slug,
                    "title": title,
                    "envelope": envelope,
                    "age": describe_age(envelope.age_seconds) if envelope.cached_at else None,
                }
            )
        by_slug = {s["slug"]: s for s in sections}
        stale = [s for s in sections if s["envelope"].status == "degraded"]
        # The outage's reason is said once, in the banner; a section repeats
        # a reason only when its own differs (a query error beside an outage).
        failing = [s["envelope"].reason for s in sections if s["envelope"].status != "ok"]
        banner_reason = in_words(outage or (failing[0] if failing else None))
        for s in sections:
            own = in_words(s["envelope"].reason) if s["envelope"].status != "ok" else None
            s["reason"] = own if own != banner_reason else None
        return {
            "banner_reason": banner_reason,
            "outage": outage is not None,
            "sections": [s for s in sections if s["slug"] != "price-history"],
            "chart": price_chart(by_slug["price-history"]["envelope"].data or []),
            "chart_section": by_slug["price-history"],
            "breaker": get_breaker(QUESTDB_ALIAS).snapshot(),
            "stale": stale,
            "oldest": min(stale, key=lambda s: s["envelope"].cached_at) if stale else None,
            "missing": [s for s in sections if s["envelope"].status == "error"],
            "refresh_seconds": int(settings.DASHBOARD_REFRESH_INTERVAL),
        }
