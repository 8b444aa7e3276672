"""The staff dashboard, served by the admin as the Dashboard entry's page.

The page is rendered whole once; then its script asks ``live/`` every second
whether anything a person must see at once has changed (a section's status
or reason, the breaker), and for fresh sections every refresh interval. Both
answers come from the same reads and the same templates as the page, so the
page and its updates never disagree, and reasons are put in words in one
place (questdash.reasons), not again in JavaScript.
"""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.urls import path
from django.views.decorators.cache import never_cache

from resilience.admin import PageAdmin
from resilience.fallback import read_ahead
from resilience.registry import get_breaker

from . import questdb_admin  # noqa: F401 - registers QuestDB's tables, read-only
from .chart import price_chart
from .db.router import QUESTDB_ALIAS
from .models import Dashboard
from .reasons import in_words
from .sections import section
from .totals import pnl_totals
from .views import refusal

TITLES = {
    "active-sessions": "Active sessions",
    "latest-prices": "Latest prices",
    "positions": "Positions",
    "price-history": "Recent prices",
}
CHART = "price-history"
PARTS = "questdash/dashboard/"  # the templates of the page's parts, each an element by id


def read_sections() -> list[dict]:
    """Each section's envelope; once one finds QuestDB unreachable, the rest use their copies."""
    sections = []
    outage = None
    queries = {slug: section(slug) for slug in TITLES}
    read_ahead(list(queries.values()))  # every copy in one round trip to the cache
    for slug, title in TITLES.items():
        query = queries[slug]
        envelope = query.serve_copy(outage) if outage else query.get()
        if envelope.unreachable:
            outage = envelope.reason
        sections.append({"slug": slug, "title": title, "envelope": envelope})
    return sections


def dashboard_state() -> dict:
    """What the page shows, less the chart: sections, banner and breaker."""
    sections = read_sections()
    envelopes = [s["envelope"] for s in sections]
    outage = next((e.reason for e in envelopes if e.unreachable), None)
    # The outage's reason is said once, in the banner; a section repeats a reason
    # only when its own differs (a query error beside an outage).
    failing = [e.reason for e in envelopes if e.status != "ok"]
    banner_reason = in_words(outage or (failing[0] if failing else None))
    for s in sections:
        own = in_words(s["envelope"].reason) if s["envelope"].status != "ok" else None
        s["reason"] = own if own != banner_reason else None
    stale = [s for s in sections if s["envelope"].status == "degraded"]
    return {
        "banner_reason": banner_reason,
        "outage": outage is not None,
        "sections": [s for s in sections if s["slug"] != CHART],
        "chart_section": next(s for s in sections if s["slug"] == CHART),
        "breaker": get_breaker(QUESTDB_ALIAS).snapshot(),
        "stale": stale,
        "oldest": min(stale, key=lambda s: s["envelope"].cached_at) if stale else None,
        "missing": [s for s in sections if s["envelope"].status == "error"],
        "refresh_seconds": int(settings.DASHBOARD_REFRESH_INTERVAL),
    }


def signature(state: dict) -> str:
    """A short digest of what must show within a second when it changes.

    Statuses, reasons, the breaker and its next probe, and the time of each
    stale copy (the banner names the oldest); not the time of fresh data,
    which changes on every read and comes with the next full update.
    """
    breaker = state["breaker"]
    said = {
        "breaker": [breaker.public_state, breaker.forced, breaker.next_probe_at_dt],
        "banner": state["banner_reason"],
        "sections": [
            [s["slug"], s["envelope"].status, s["reason"],
             s["envelope"].cached_at if s["envelope"].status != "ok" else None]
            for s in [*state["sections"], state["chart_section"]]
        ],
    }  # fmt: skip
    return hashlib.blake2s(json.dumps(said, default=str).encode(), digest_size=8).hexdigest()


def rendered(state: dict) -> dict:
    """The state with what only drawing needs: the chart's SVG and the positions' totals."""
    for s in state["sections"]:
        if s["slug"] == "positions":
            s["totals"] = pnl_totals(s["envelope"].data or [])
    return {**state, "chart": price_chart(state["chart_section"]["envelope"].data or [])}


@admin.register(Dashboard)
class DashboardAdmin(PageAdmin):
    page_template = "questdash/dashboard.html"
    page_title = "QuestDB dashboard"

    def get_urls(self):
        # Not admin_view(): that would check the permission the admin's slow way (all of the
        # user's permissions, two queries) and redirect to the login page; live/ answers a
        # script, every second, under the JSON API's own rule and its one-query check.
        live = path(
            "live/",
            never_cache(self.live_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_live",
        )
        return [live, *super().get_urls()]

    def page_context(self, request: HttpRequest) -> dict:
        state = dashboard_state()
        return {**rendered(state), "signature": signature(state)}

    def live_view(self, request: HttpRequest) -> HttpResponse:
        """GET live/?state=<digest>: only the digest while it still holds; else every part.

        Staff with the dashboard's permission only, as /api/dashboard/<section>/ (401, 403 in
        JSON otherwise: the page's script then reloads, and the admin asks for a login).

        Without ``state`` (the page's update every refresh interval) every part
        is rendered: the status line, the banner, each section and the chart,
        keyed by the id of the element each replaces.
        """
        if (refused := refusal(request)) is not None:
            return refused
        state = dashboard_state()
        digest = signature(state)
        if request.GET.get("state") == digest:
            return JsonResponse({"state": digest, "changed": False})
        context = rendered(state)
        parts = {
            "qd-status": render_to_string(PARTS + "status.html", context, request),
            "qd-banner": render_to_string(PARTS + "banner.html", context, request),
            **{
                s["slug"]: render_to_string(PARTS + "section.html", {**context, "s": s}, request)
                for s in state["sections"]
            },
            CHART: render_to_string(PARTS + "chart.html", context, request),
        }
        return JsonResponse(
            {"state": digest, "changed": True, "breaker": state["breaker"].public_state,
             "parts": parts}
        )  # fmt: skip
