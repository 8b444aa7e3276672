"""The dashboard page for people: the outage said once and in words, prices alike, an icon.

Against the real QuestDB, stopped for real; the browser's view of the same
page is in test_browser.py.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client

from questdash import localdb
from questdash.reasons import in_words

from .settings import TEST_ENV

pytestmark = [pytest.mark.usefixtures("questdb_server"), pytest.mark.django_db(databases="__all__")]

DASHBOARD = "/admin/questdash/dashboard/"


@pytest.fixture(autouse=True)
def questdb_back(fresh_state):
    yield
    if not localdb.status().running:
        localdb.start()


def test_the_outage_is_said_once_in_the_banner_in_words(staff):
    assert staff.get(DASHBOARD).status_code == 200  # every section has a copy now
    localdb.stop()
    html = staff.get(DASHBOARD).content.decode()
    headings = re.findall(r'<h2 id="[^"]+">[^<]+<span class="pill status-(\w+)">', html)
    assert headings == ["degraded"] * 4
    banner = re.search(r'<div class="banner" role="alert">(.*?)</div>', html, re.S).group(1)
    assert "QuestDB refused the connection: it is down or restarting." in banner
    assert 'class="reason"' not in html  # no section repeats it
    for code in ("database_unavailable", "circuit_open", "Failed to get_", "port 1"):
        assert code not in html  # the machine's words stay in the JSON
    assert TEST_ENV["QUESTDB_PASSWORD"] not in html


def test_every_price_has_four_decimals(staff):
    html = staff.get(DASHBOARD).content.decode()
    section = re.search(r'<section class="qd-section" id="latest-prices"[^>]*>(.*?)</section>',
                        html, re.S).group(1)  # fmt: skip
    prices = re.findall(r'<td class="num">([^<]+)</td>', section)
    assert len(prices) == 12
    assert all(re.fullmatch(r"\d{1,3}(,\d{3})*\.\d{4}", price) for price in prices), prices


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("database_unavailable: Failed to get_positions: connection failed: connection to "
         "server at \"127.0.0.1\", port 8812 failed: Connection refused",
         "QuestDB refused the connection: it is down or restarting."),
        ("database_unavailable: Failed to get_positions: QuestDB did not answer the query "
         "within 1.6 s", "QuestDB did not answer in time."),
        ("database_unavailable: Failed to get_positions: deadline of 2 s exceeded after 1 "
         "attempt", "QuestDB did not answer in time."),
        ("database_unavailable: Failed to get_positions: server closed the connection "
         "unexpectedly", "QuestDB dropped the connection."),
        ("circuit_open: Failed to get_positions: circuit breaker 'questdb' is open; next probe "
         "due at 2026-01-01T00:00:00.000Z (in 12 s)",
         "QuestDB failed several times in a row, so the dashboard is not asking it for a while "
         "(circuit breaker open); it tries again by itself."),
        ("circuit_open: Failed to get_positions: circuit breaker 'questdb' is forced open; "
         "calls resume when it is reset",
         "An operator switched QuestDB off for the dashboard (breaker forced open)."),
        ("query_error: Failed to get_positions: Invalid column: x",
         "QuestDB could not run this section's query; the rest of the page is unaffected."),
        ("refresh_in_progress: another request has been loading it for 2.2 s",
         "Another request is loading this section; showing the last copy meanwhile."),
        (None, None),
    ],
)  # fmt: skip
def test_reasons_in_words(reason, words):
    assert in_words(reason) == words


def test_the_favicon_is_a_real_icon():
    response = Client().get("/favicon.ico")
    assert response.status_code == 200
    assert "icon" in response["Content-Type"]
    body = b"".join(response.streaming_content)
    assert body[:4] == b"\x00\x00\x01\x00" and body[4] >= 1  # an ICO with images in it
