"""The dashboard's live/ answers, its totals, its filters and its chart, in-process.

live/ against the real QuestDB: the digest holds while only fresh data
changes, and moves with a status, a reason or the breaker; its parts are the
page's own elements. The browser's view of the same (in place, within a
second) is in test_browser.py.
"""

from __future__ import annotations

import io
import itertools
import math
import re

import pytest
from django.core.management import call_command
from django.test import Client

from questdash.chart import COLORS, HEIGHT, LINE_GAP, PAD, _spread
from questdash.templatetags.dashboard import DASH, describe_age, pnl, pnl_class
from questdash.totals import pnl_totals
from resilience.registry import get_breaker

pytestmark = [pytest.mark.usefixtures("questdb_server", "fresh_state"),
              pytest.mark.django_db(databases="__all__")]  # fmt: skip

PAGE = "/admin/questdash/dashboard/"
LIVE = PAGE + "live/"
PARTS = ["qd-status", "qd-banner", "active-sessions", "latest-prices", "positions",
         "price-history"]  # fmt: skip


def test_live_parts_are_the_page_s_own_elements(staff):
    page = staff.get(PAGE).content.decode()
    digest = re.search(r'data-state="(\w+)"', page).group(1)
    answer = staff.get(LIVE).json()
    assert answer["changed"] is True and answer["state"] == digest
    assert answer["breaker"] == "closed"
    assert list(answer["parts"]) == PARTS
    for element_id, html in answer["parts"].items():
        assert re.match(rf'<\w+ [^>]*id="{element_id}"', html.strip()), html[:120]
        assert f'id="{element_id}"' in page  # the element it replaces is on the page
    assert "Total, all sessions" in answer["parts"]["positions"]


def test_the_digest_holds_while_only_fresh_data_changes(staff, settings):
    settings.DASHBOARD_FRESH_FOR = 0  # every look reads QuestDB again: new cached_at each time
    first = staff.get(LIVE).json()["state"]
    again = staff.get(LIVE, {"state": first})
    assert again.json() == {"state": first, "changed": False}
    assert again["Cache-Control"].startswith("max-age=0")  # never cached, as the page


def test_the_digest_moves_with_the_breaker_and_the_parts_say_why(staff):
    first = staff.get(LIVE).json()["state"]
    get_breaker("questdb").force_open("live test")
    answer = staff.get(LIVE, {"state": first}).json()
    assert answer["changed"] is True and answer["state"] != first
    assert answer["breaker"] == "open"
    assert "QUESTDB BREAKER: OPEN" in answer["parts"]["qd-status"].upper()
    banner = answer["parts"]["qd-banner"]
    assert 'role="alert"' in banner and "An operator switched QuestDB off" in banner
    assert re.search(r'<span data-age="[\d.]+">\d+ seconds? old</span>', banner)  # ticks on
    for slug in PARTS[2:]:
        assert 'class="pill status-degraded"' in answer["parts"][slug], slug
    assert "circuit_open" not in str(answer)  # reasons in words, as on the page


def test_live_is_refused_in_json_without_redirects(client):
    answer = client.get(LIVE, headers={"Accept": "application/json"})  # as the page's script asks
    assert answer.status_code == 401
    assert answer.json()["error"].startswith("Authentication required")


@pytest.mark.parametrize(
    ("rows", "sessions", "overall"),
    [
        ([], [], (None, 0, 0)),
        ([{"session_id": "A", "unrealized_pnl": 10.005}, {"session_id": "B", "unrealized_pnl": -3},
          {"session_id": "A", "unrealized_pnl": 0.1}],
         [("A", 10.11, 2, 0), ("B", -3.0, 1, 0)], (7.11, 3, 0)),
        ([{"session_id": "A", "unrealized_pnl": None}, {"session_id": "A", "unrealized_pnl": 5},
          {"session_id": "A", "unrealized_pnl": math.nan}, {"session_id": "A"}],
         [("A", 5.0, 4, 3)], (5.0, 4, 3)),
        ([{"session_id": "A", "unrealized_pnl": None}], [("A", None, 1, 1)], (None, 1, 1)),
        ([{"session_id": "A", "unrealized_pnl": 1.7e308}] * 2, [("A", None, 2, 0)], (None, 2, 0)),
        ([{"session_id": None, "unrealized_pnl": 1}, "not a row", {"unrealized_pnl": True}], [],
         (None, 0, 0)),
    ],
    ids=["nothing", "sums", "unknown-left-out", "all-unknown", "overflow", "no-session"],
)  # fmt: skip
def test_pnl_totals(rows, sessions, overall):
    totals = pnl_totals(rows)
    assert [(t.label, t.pnl, t.positions, t.missing) for t in totals.sessions] == sessions
    assert (totals.overall.pnl, totals.overall.positions, totals.overall.missing) == overall


@pytest.mark.parametrize(
    ("value", "shown", "kind"),
    [(1864.0, "+1,864.00", "gain"), (-819.004, "-819.00", "loss"), (0.0, "0.00", ""),
     (None, DASH, ""), (math.inf, DASH, ""), (True, DASH, "")],
)  # fmt: skip
def test_pnl_says_gain_or_loss_in_its_sign_not_colour_alone(value, shown, kind):
    assert pnl(value) == shown
    assert pnl_class(value) == kind


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0, "0 seconds old"), (1.9, "1 second old"), (59, "59 seconds old"), (60, "1 minute old"),
     (3599, "59 minutes old"), (7200, "2 hours old"), (86400 * 3, "3 days old"),
     (-5, "0 seconds old")],
)  # fmt: skip
def test_describe_age(seconds, words):
    assert describe_age(seconds) == words


def luminance(color: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("background", ["#ffffff", "#121212"], ids=["light", "dark"])
def test_every_chart_line_has_3_to_1_contrast_in_both_themes(background):
    assert len(set(COLORS)) == 12
    assert all(contrast(color, background) >= 3.0 for color in COLORS), [
        (color, round(contrast(color, background), 2)) for color in COLORS
    ]


def test_line_labels_never_overlap_and_stay_in_the_chart():
    ends = {f"S{i}": 100.0 + (i % 3) for i in range(12)}  # twelve lines ending close together
    placed = _spread(ends, top=PAD - 8, bottom=HEIGHT - PAD + 8)
    heights = sorted(placed.values())
    assert all(b - a >= LINE_GAP - 1e-9 for a, b in itertools.pairwise(heights))
    assert heights[0] >= PAD - 8 and heights[-1] <= HEIGHT - PAD + 8


def test_the_demo_login_sees_every_page_the_readme_shows():
    out = io.StringIO()
    call_command("demo_login", "--username", "demo", stdout=out)
    password = re.search(r"demo / (\S+)", out.getvalue()).group(1)
    client = Client()
    assert client.login(username="demo", password=password)
    for path in (PAGE, "/admin/resilience/circuitbreaker/", "/admin/questdash/price/",
                 "/admin/questdash/position/", "/admin/questdash/tradingsession/"):  # fmt: skip
        assert client.get(path).status_code == 200, path
