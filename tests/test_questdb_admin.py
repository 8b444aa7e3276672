"""QuestDB's tables in the admin, against the real QuestDB with a million prices.

Every page's rows are checked against hand-written SQL; every role is
checked for read-only access; QuestDB is really stopped for the degraded
pages.
"""

from __future__ import annotations

import datetime
import re
import time

import pytest
from django.contrib.admin.utils import unquote
from django.contrib.auth.models import Permission
from django.db import connections
from django.test import Client

from questdash import localdb, seed
from questdash.db.backend.operations import as_utc
from questdash.models import Price, TradingSession
from questdash.questdb_admin import object_id, parse_object_id
from resilience.registry import get_breaker

from .settings import TEST_ENV

pytestmark = [pytest.mark.usefixtures("questdb_server"), pytest.mark.django_db(databases="__all__")]

ROWS = 1_000_000
PRICES = "/admin/questdash/price/"
POSITIONS = "/admin/questdash/position/"
SESSIONS = "/admin/questdash/tradingsession/"
PASSWORD = TEST_ENV["QUESTDB_PASSWORD"]


@pytest.fixture(scope="module", autouse=True)
def million_prices(questdb_server, django_db_blocker):
    """A million prices (QuestDB generates them in a second or two); the demo data after."""
    with django_db_blocker.unblock():
        if not localdb.status().running:
            localdb.start()
        seed.seed(rows=ROWS)
        yield
        if not localdb.status().running:
            localdb.start()
        seed.seed()


@pytest.fixture(autouse=True)
def _quick_recovery(quick_recovery):
    """Every test here: fresh_state and a one-second recovery timeout (tests/conftest.py)."""


def client_for(django_user_model, name, *, staff=True, superuser=False, perms=()) -> Client:
    user = django_user_model.objects.create_user(
        name, password="x", is_staff=staff, is_superuser=superuser
    )
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer(django_user_model):
    return client_for(
        django_user_model,
        "viewer",
        perms=["view_price", "view_position", "view_tradingsession", "view_circuitbreaker"],
    )


def sql(query: str, params=None) -> list[tuple]:
    with connections["questdb"].cursor() as cursor:
        cursor.execute(query, params)
        return [tuple(map(as_utc, row)) for row in cursor.fetchall()]


def rows_of(response, *fields) -> list[tuple]:
    assert response.status_code == 200, response.content[:500]
    return [
        tuple(getattr(obj, f) for f in fields) for obj in response.context_data["cl"].result_list
    ]


def choices_of(response, title: str) -> list[str]:
    """The titles of one list filter's choices, "All" first."""
    spec = next(s for s in response.context_data["cl"].filter_specs if s.title == title)
    return [choice["display"] for choice in spec.choices(response.context_data["cl"])]


def hierarchy(response) -> list[str]:
    """The date hierarchy's choices, as the page shows them (not its "back" link)."""
    assert response.status_code == 200, response
    nav = re.search(r'<nav class="toplinks">(.*?)</nav>', response.content.decode(), re.S)
    assert nav, "the page shows a date hierarchy"
    return re.findall(r'<a href="[^"]*">([^<]+)</a>', nav[1])


def table_rows(response) -> int:
    """Rows in the page's result table, its header included."""
    table = re.search(r'<table id="result_list">(.*?)</table>', response.content.decode(), re.S)
    return table[1].count("<tr")


# Pages, filters, search, date hierarchy -------------------------------------------------


def test_first_page_is_the_newest_hundred_prices(viewer):
    response = viewer.get(PRICES)
    assert rows_of(response, "symbol", "price", "ts") == sql(
        "SELECT symbol, price, ts FROM prices ORDER BY ts DESC LIMIT 100"
    )
    assert response.context_data["cl"].result_count == ROWS
    html = response.content.decode()
    assert "1000000 prices" in html or "1,000,000 prices" in html


def test_page_one_thousand_of_a_million_rows(viewer):
    response = viewer.get(PRICES, {"p": 1000})
    assert rows_of(response, "symbol", "price", "ts") == sql(
        "SELECT symbol, price, ts FROM prices ORDER BY ts DESC LIMIT 99900, 100000"
    )


def test_symbol_filter_rows_and_choices(viewer):
    response = viewer.get(PRICES, {"symbol__exact": "BTC-USD", "p": 3})
    assert rows_of(response, "symbol", "price", "ts") == sql(
        "SELECT symbol, price, ts FROM prices WHERE symbol = 'BTC-USD' ORDER BY ts DESC"
        " LIMIT 200, 300"
    )
    assert (
        response.context_data["cl"].result_count
        == sql("SELECT count() FROM prices WHERE symbol = 'BTC-USD'")[0][0]
    )
    assert choices_of(response, "symbol") == ["All", *sorted(seed.SYMBOLS)]


def test_position_filters_session_and_symbol(viewer):
    response = viewer.get(POSITIONS, {"session_id__exact": "S-1001", "symbol__exact": "NVDA"})
    assert rows_of(response, "session_id", "symbol", "quantity", "ts") == sql(
        "SELECT session_id, symbol, quantity, ts FROM positions"
        " WHERE session_id = 'S-1001' AND symbol = 'NVDA' ORDER BY ts DESC"
    )
    assert len(response.context_data["cl"].result_list) == 2  # opened, then topped up
    assert choices_of(response, "session id") == [
        "All",
        *sorted(s.session_id for s in seed.SESSIONS),
    ]


def test_session_filters_strategy_and_status(viewer):
    response = viewer.get(SESSIONS, {"strategy__exact": "carry", "status__exact": "stopped"})
    assert rows_of(response, "session_id", "status") == [("S-0998", "stopped")]
    assert choices_of(response, "strategy") == ["All", *sorted({s.strategy for s in seed.SESSIONS})]
    assert choices_of(response, "status") == ["All", "active", "stopped"]


def test_search_finds_a_symbol_as_typed_or_in_capitals(viewer):
    for term in ("eth-usd", "ETH-USD"):
        response = viewer.get(PRICES, {"q": term})
        assert rows_of(response, "symbol", "ts") == sql(
            "SELECT symbol, ts FROM prices WHERE symbol = 'ETH-USD' ORDER BY ts DESC LIMIT 100"
        )
    assert rows_of(viewer.get(PRICES, {"q": "ETH"}), "symbol") == []  # a key, not a substring


def test_session_search_by_name_words(viewer):
    response = viewer.get(SESSIONS, {"q": "crypto"})
    assert {row[0] for row in rows_of(response, "session_id")} == {"S-1002"}


def test_date_hierarchy_drills_down_to_a_day(viewer):
    months = sql("SELECT DISTINCT date_trunc('month', ts) FROM prices ORDER BY 1")
    years = {m[0].year for m in months}
    response = viewer.get(PRICES)
    if len(years) > 1:
        assert hierarchy(response) == [str(y) for y in sorted(years)]
    year = months[-1][0].year
    in_year = [m[0] for m in months if m[0].year == year]
    response = viewer.get(PRICES, {"ts__year": year})
    assert hierarchy(response) == [m.strftime("%B %Y") for m in in_year]

    month = in_year[0]  # the oldest month: its first day is partly empty
    days = sql(
        "SELECT DISTINCT date_trunc('day', ts) FROM prices WHERE ts >= %s AND ts < %s ORDER BY 1",
        [month, (month + datetime.timedelta(days=32)).replace(day=1)],
    )
    response = viewer.get(PRICES, {"ts__year": year, "ts__month": month.month})
    assert hierarchy(response) == [d[0].strftime("%B %-d") for d in days]

    day = days[0][0]
    response = viewer.get(PRICES, {"ts__year": year, "ts__month": month.month, "ts__day": day.day})
    assert rows_of(response, "symbol", "ts") == sql(
        "SELECT symbol, ts FROM prices WHERE ts >= %s AND ts < %s ORDER BY ts DESC LIMIT 100",
        [day, day + datetime.timedelta(days=1)],
    )


def test_change_view_shows_one_row(viewer):
    listing = viewer.get(PRICES, {"symbol__exact": "JPM"})
    link = re.search(
        r'href="(/admin/questdash/price/[^"]+/change/[^"]*)"', listing.content.decode()
    )
    newest = rows_of(listing, "symbol", "price", "ts")[0]
    response = viewer.get(link[1])
    assert response.status_code == 200
    assert response.context_data["original"].pk == (newest[0], newest[2])
    html = response.content.decode()
    assert f"{newest[1]:g}" in html.replace(",", "")
    assert 'name="_save"' not in html and "deletelink" not in html and "historylink" not in html


def test_unknown_or_malformed_row_ids_go_back_to_the_list(viewer):
    for bad in ("AAPL,1", "AAPL", "AAPL,notanumber", "a,b,c"):
        response = viewer.get(f"{PRICES}{bad}/change/")
        assert response.status_code == 302, bad
        assert response["Location"].endswith("/admin/")


def test_object_ids_round_trip_any_key():
    at = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC)
    for symbol in ("AAPL", "BTC-USD", "odd,sym/bol_2C:%"):
        row = Price(symbol=symbol, price=1.0, ts=at)
        name = object_id(row)
        assert "/" not in name
        assert parse_object_id(Price, unquote(name)) == (symbol, at)


# Read-only, for every role ----------------------------------------------------------------


def test_anonymous_is_sent_to_login(client):
    for url in (PRICES, POSITIONS, SESSIONS):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_staff_without_view_permission_is_refused(django_user_model):
    staff = client_for(django_user_model, "plain", perms=["view_price"])
    assert staff.get(PRICES).status_code == 200
    for url in (POSITIONS, SESSIONS):
        assert staff.get(url).status_code == 403
    nobody = client_for(django_user_model, "nobody")
    assert nobody.get(PRICES).status_code == 403


@pytest.mark.parametrize(
    "role",
    [
        {"perms": ["view_price"]},
        {"perms": ["view_price", "add_price", "change_price", "delete_price"]},
        {"superuser": True},
    ],
    ids=["viewer", "viewer with every model permission", "superuser"],
)
def test_nobody_can_add_change_or_delete(django_user_model, role):
    user = client_for(django_user_model, "role", **role)
    listing = user.get(PRICES)
    html = listing.content.decode()
    assert listing.status_code == 200
    assert f'href="{PRICES}add/"' not in html and 'name="action"' not in html
    row = re.search(r'href="(/admin/questdash/price/([^"/]+)/change/)', html)
    change = row[1]
    assert user.get(change).status_code == 200
    before = Price.objects.count()
    response = user.post(change, {"symbol": "HACK", "price": "0", "ts_0": "2020-01-01"})
    assert response.status_code == 403
    for url in (f"{PRICES}add/", f"{PRICES}{row[2]}/delete/", f"{PRICES}{row[2]}/history/"):
        assert user.get(url).status_code == 404, url
        assert user.post(url, {"post": "yes"}).status_code == 404, url
    assert Price.objects.count() == before
    assert not Price.objects.filter(symbol="HACK").exists()


def test_admin_index_lists_the_tables_without_an_add_link(viewer):
    html = viewer.get("/admin/").content.decode()
    for url in (PRICES, POSITIONS, SESSIONS):
        assert f'href="{url}"' in html
        assert f'href="{url}add/"' not in html


# During an outage ---------------------------------------------------------------------------


def test_stopped_questdb_shows_the_banner_and_the_last_good_first_page(viewer):
    live = viewer.get(PRICES)
    first_page = rows_of(live, "symbol", "price", "ts")
    localdb.stop()

    response = viewer.get(PRICES)
    html = response.content.decode()
    assert response.status_code == 200
    assert "QuestDB unavailable: showing the first page from" in html
    assert "old." in html
    assert "QuestDB refused the connection" in html  # the reason in words
    assert "database_unavailable" not in html  # the machine code stays in the JSON
    assert table_rows(response) == 1 + len(first_page)  # header and the copy's rows
    assert all(symbol in html for symbol, _, _ in first_page)
    assert PASSWORD not in html

    # A filtered or deeper page has no copy of its own: the first page, said as such.
    response = viewer.get(PRICES, {"symbol__exact": "AAPL", "p": 7})
    assert response.status_code == 200
    assert "QuestDB unavailable: showing the first page from" in response.content.decode()


def test_no_copy_means_an_empty_list_with_the_reason(viewer):
    localdb.stop()
    response = viewer.get(SESSIONS)
    html = response.content.decode()
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1
    assert "QuestDB unavailable." in html and "No saved copy of this list yet." in html
    assert "No rows to show." in html
    assert "QuestDB refused the connection" in html and "database_unavailable" not in html


def test_open_breaker_serves_the_copy_without_touching_questdb(viewer, connect_attempts):
    viewer.get(POSITIONS)
    localdb.stop()
    breaker = get_breaker("questdb")
    breaker.force_open()
    connect_attempts.clear()
    try:
        response = viewer.get(POSITIONS)
    finally:
        breaker.reset()
    html = response.content.decode()
    assert response.status_code == 200
    assert "QuestDB breaker: OPEN" in html
    assert "An operator switched QuestDB off for the dashboard (breaker forced open)." in html
    assert table_rows(response) == 1 + 2 * sum(len(s.positions) for s in seed.SESSIONS)
    assert connect_attempts == []


def test_row_page_during_an_outage_is_the_degraded_page_not_a_500(viewer):
    link = re.search(
        r'href="(/admin/questdash/price/[^"]+/change/)', viewer.get(PRICES).content.decode()
    )
    localdb.stop()
    response = viewer.get(link[1])
    assert response.status_code == 503
    assert "Retry-After" in response


def test_the_list_heals_by_itself_when_questdb_returns(viewer):
    viewer.get(PRICES)
    localdb.stop()
    breaker = get_breaker("questdb")
    while breaker.public_state != "open":
        viewer.get(PRICES)
    localdb.start()
    time.sleep(1.1)  # the recovery timeout: the next page is the probe
    response = viewer.get(PRICES)
    assert response.status_code == 200
    assert "result_list" in response.content.decode()
    assert "QuestDB unavailable" not in response.content.decode()
    assert breaker.public_state == "closed"
    assert TradingSession.objects.count() == len(seed.SESSIONS) + 2
