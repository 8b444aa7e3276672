"""The staff pages in a real browser: Debian's chromium, driven by Selenium, against gunicorn.

The site runs as `make run` runs it: gunicorn with two workers and a Celery
worker with its beat, sharing the breaker and the fleet's figures through a
real Redis; QuestDB is the real test server, reached through a real
Toxiproxy. The browser logs in, watches the dashboard go down when QuestDB
is really stopped and heal when it is back, watches the breaker page's
figures move while Toxiproxy resets every connection, and forces the
breaker open and resets it from the page. No page may log a console error.

Waits are explicit (a condition polled against a generous deadline), never
sleeps: the machine may be busy. Screenshots go to var/screenshots/
(git-ignored).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from questdash import localdb, seed
from questdash.db.router import QUESTDB_ALIAS
from questdash.reasons import CIRCUIT, CIRCUIT_DEFAULT, UNREACHABLE
from questdash.templatetags.dashboard import describe_age
from testkit.fleet import DASHBOARD, CeleryWorker, Fleet, PriceFeedProcess, request

from .browser import BLOCKING, SHOTS, THEMES, Browser
from .settings import TEST_ENV

pytestmark = [pytest.mark.usefixtures("questdb_server"), pytest.mark.timeout(240)]

BREAKERS = "/admin/resilience/circuitbreaker/"
# Every page the README shows; the demo login opens each one.
README_PAGES = {
    "/admin/": "Site administration",
    DASHBOARD: "QuestDB dashboard",
    BREAKERS: "Circuit breakers",
    "/admin/questdash/price/": "price",
    "/admin/questdash/position/": "position",
    "/admin/questdash/tradingsession/": "trading session",
}
# axe-core audits these in both themes: the login, the dashboard, the breaker page, a changelist.
AUDITED = ("/admin/login/", DASHBOARD, BREAKERS, "/admin/questdash/price/")
AUDITS: dict[str, dict[str, list[dict]]] = {}  # theme -> page -> violations, for the summary
PEOPLE_WORDS = [words for _, words in (*UNREACHABLE, *CIRCUIT)] + [CIRCUIT_DEFAULT]
SECTIONS = 4  # three tables and the chart

DASHBOARD_STATE = """
const text = node => node ? node.innerText.trim() : null;
return {
  banner: text(document.querySelector('.banner')),
  sections: Array.from(document.querySelectorAll('section.qd-section')).map(s => ({
    id: s.id,
    status: text(s.querySelector('h2 .pill')),
    age: text(s.querySelector('h2 .age')),
    reason: text(s.querySelector('.reason')),
  })),
  prices: Array.from(document.querySelectorAll('#latest-prices td.num')).map(td => td.innerText),
  times: Array.from(document.querySelectorAll('#latest-prices tbody td:last-child')).map(
    td => td.innerText),
  breaker: text(document.querySelector('#qd-status .pill')),
  totals: Array.from(document.querySelectorAll('#positions tfoot tr')).map(r => r.innerText),
  same_page: window.qdSamePage === true,
  body: document.body.innerText,
};
"""
ADD_AGES = """
for (const age of AGES) {
  const span = document.createElement('span');
  span.className = 'test-age';
  span.dataset.age = String(age);
  document.getElementById('qd').appendChild(span);
}
"""
READ_AGES = "return Array.from(document.querySelectorAll('.test-age')).map(s => s.textContent);"
FOCUS_RING = "return getComputedStyle(document.activeElement).outlineStyle;"
# Selects the active sessions' names (text that no update changes) and says what is selected.
SELECT_NAMES = """
const cells = document.querySelectorAll('#active-sessions tbody td:nth-child(2)');
const range = document.createRange();
range.setStartBefore(cells[0]);
range.setEndAfter(cells[cells.length - 1]);
const selection = window.getSelection();
selection.removeAllRanges();
selection.addRange(range);
return selection.toString();
"""
# Records every change of the page: when (the browser's clock), the breaker's badge, the
# banner and the reason it gives, as one observation per batch of DOM changes.
RECORD_CHANGES = """
window.qdChanges = [];
const text = node => node ? node.innerText.trim() : null;
new MutationObserver(() => {
  const pill = text(document.querySelector('#qd-status .pill')) || '';
  window.qdChanges.push({
    at: Date.now(),
    breaker: ((pill.match(/BREAKER: (\\w+)/) || [])[1] || '').toLowerCase(),
    banner: text(document.querySelector('.banner')),
    reason: text(document.querySelector('.banner-reason')),
  });
}).observe(document.getElementById('qd'), {subtree: true, childList: true, characterData: true,
                                            attributes: true});
"""
BREAKER_STATE = """
const text = node => node ? node.innerText.trim() : null;
const card = document.querySelector('#breaker-questdb');
if (!card) return null;
const figures = {};
card.querySelectorAll('[data-figure]').forEach(n => { figures[n.dataset.figure] = text(n); });
return {
  state: card.dataset.state,
  scope: card.querySelector('.cb-scope').dataset.scope,
  figures: figures,
  outage: text(card.querySelector('.cb-outage')),
  countdown: text(card.querySelector('.cb-countdown')),
  processes: Array.from(card.querySelectorAll('.cb-processes tr[data-role]')).map(
    r => r.dataset.role + ' ' + r.dataset.pid),
  history: Array.from(card.querySelectorAll('.cb-history tbody tr')).map(r => r.innerText),
  timeline: card.querySelectorAll('svg.cb-timeline rect').length,
  answered: text(document.getElementById('answered-by')),
  messages: text(document.querySelector('.messagelist')),
  token: (card.querySelector('input[name=csrfmiddlewaretoken]') || {}).value || null,
};
"""


@pytest.fixture(scope="module")
def site(fleet_proxy, redis_server, tmp_path_factory, django_db_blocker) -> Iterator[Fleet]:
    """gunicorn with two workers, a Celery worker with beat and the demo's price feed, as
    `make run` runs them; QuestDB through Toxiproxy (the feed writes to it directly)."""
    if not localdb.status().running:
        localdb.start()
    server = Fleet(
        workdir=tmp_path_factory.mktemp("browser-site"),
        questdb_port=fleet_proxy.port,
        redis_url=redis_server.fresh_database(7),
        workers=2,
        # Quick to heal, and the beat refreshes every 3 s: the figures move while we watch.
        extra_env={"RESILIENCE_RECOVERY_TIMEOUT": "3", "DASHBOARD_REFRESH_INTERVAL": "3"},
    )
    server.prepare()
    server.manage("collectstatic", "--noinput", "-v", "0")  # as `make run` does
    server.start()
    celery = CeleryWorker(server)
    celery.start()
    feed = PriceFeedProcess(server)
    feed.start()
    yield server
    stopped = feed.stop()
    celery.stop()
    server.stop()
    with django_db_blocker.unblock():
        connections[QUESTDB_ALIAS].close()  # QuestDB was restarted: not the old connection
        seed.seed()  # the demo data as the other tests expect it, the feed's ticks gone
    for log in (server.log, celery.log, feed.log):
        assert TEST_ENV["QUESTDB_PASSWORD"] not in log.read_text()
    assert stopped == 0 and "Traceback" not in feed.log.read_text()  # Ctrl-C, no traceback


@pytest.fixture(scope="module")
def browser(site: Fleet) -> Iterator[Browser]:
    chromium = Browser(site.base_url)
    yield chromium
    chromium.quit()


@pytest.fixture(autouse=True)
def no_console_errors(browser: Browser) -> Iterator[None]:
    yield
    browser.collect_console()
    assert not browser.errors, json.dumps(browser.errors, indent=1)


def breaker_state(browser: Browser) -> dict:
    return browser.js(BREAKER_STATE)


def audit(browser: Browser, path: str, when: str = "") -> None:
    """axe-core on ``path`` in each theme, every violation kept; a screenshot of each."""
    for theme in THEMES:
        browser.visit(path)
        browser.theme(theme)
        browser.visit(path)
        assert browser.js("return document.documentElement.dataset.theme") == theme
        AUDITS.setdefault(theme, {})[f"{path} {when}".strip()] = browser.axe()
        browser.shot(f"{theme}{path.rstrip('/').replace('/', '-')}{'-' + when if when else ''}")
    browser.theme("auto")
    save_audits()


def save_audits() -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "axe.json").write_text(json.dumps(AUDITS, indent=1))


def blocking(theme: str) -> dict[str, list[str]]:
    """The serious and critical violations found in ``theme``: page -> 'rule: element'."""
    return {
        path: [f"{v['id']} ({v['impact']}): {n['target']}" for v in found
               if v["impact"] in BLOCKING for n in v["nodes"]]
        for path, found in AUDITS.get(theme, {}).items()
    }  # fmt: skip


def test_the_login_page_reads_well_in_both_themes(browser: Browser):
    audit(browser, "/admin/login/")


def test_log_in(site: Fleet, browser: Browser):
    browser.visit("/admin/")
    assert "/admin/login/" in browser.driver.current_url
    browser.driver.find_element(By.ID, "id_username").send_keys(site.USERNAME)
    browser.driver.find_element(By.ID, "id_password").send_keys(site.password)
    browser.driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    browser.until(lambda: "Site administration" in browser.driver.title, 30, "the admin index")
    browser.collect_console()
    assert browser.js("return document.querySelector('#user-tools strong').textContent") == (
        site.USERNAME
    )
    assert browser.driver.get_cookie("sessionid")
    favicon = request(site.base_url, "/favicon.ico", timeout=10)
    assert favicon.status == 200 and favicon.body[:4] == b"\x00\x00\x01\x00"  # an ICO file
    browser.shot("01-logged-in")


def test_the_demo_login_opens_every_page_the_readme_shows(site: Fleet, browser: Browser):
    """The demo login (Fleet's staff user is made by demo_login) sees each page, no 403."""
    for path, words in README_PAGES.items():
        browser.visit(path)
        assert browser.driver.current_url == site.base_url + path, path  # not sent to log in
        title = browser.driver.title
        assert words.lower() in title.lower() and "forbidden" not in title.lower(), title
        assert browser.driver.find_elements(By.ID, "content"), path


def test_every_page_reads_well_in_both_themes(browser: Browser):
    """axe-core: no serious or critical violation on our pages, light or dark."""
    for path in AUDITED[1:]:
        audit(browser, path)
    counts = {
        theme: {path: len(found) for path, found in blocking(theme).items()} for theme in THEMES
    }
    print("axe-core serious+critical:", json.dumps(counts))
    for theme in THEMES:
        assert not any(blocking(theme).values()), json.dumps(blocking(theme), indent=1)


def dashboard(browser: Browser) -> dict:
    return browser.js(DASHBOARD_STATE)


def all_ok(state: dict) -> bool:
    statuses = [s["status"] for s in state["sections"]]
    return state["banner"] is None and statuses == ["OK"] * SECTIONS


def open_live_dashboard(browser: Browser) -> dict:
    """The dashboard, every section fresh, marked so that a reload would show."""
    up = browser.reload_until(DASHBOARD, DASHBOARD_STATE, all_ok, 60, "every section fresh")
    browser.js("window.qdSamePage = true;")
    return up


def test_the_dashboard_moves_with_the_market_in_place(browser: Browser):
    """The feed's ticks reach the page every refresh interval (3 s here) without a reload;
    scrolling and a selection survive each update; the P&L totals move with the prices."""
    up = open_live_dashboard(browser)
    prices = up["prices"]
    assert prices and all(re.fullmatch(r"[\d,]+\.\d{4}", price) for price in prices), prices
    totals = up["totals"]
    assert [t.split("\t")[0] for t in totals[:-1]] == [
        f"Total {s}" for s in ("S-0997", "S-0998", "S-1001", "S-1002", "S-1003")
    ], totals
    assert totals[-1].startswith("Total, all sessions OK"), totals
    assert all(re.search(r"\t[+-]?[\d,]+\.\d\d$", t) for t in totals), totals
    browser.shot("02-dashboard-up")
    # Scroll to the positions and select the sessions' names: neither may move.
    browser.js("document.getElementById('positions').scrollIntoView();")
    scrolled = browser.js("return window.scrollY")
    assert scrolled > 0
    selected = browser.js(SELECT_NAMES)
    assert "Momentum US large caps" in selected
    moved = browser.until(
        lambda: (s := dashboard(browser))["times"] != up["times"] and s["prices"] != prices and s,
        30, "new ticks on the page",
    )  # fmt: skip
    assert moved["same_page"], "the page was reloaded"
    assert all_ok(moved)
    later = browser.until(
        lambda: (s := dashboard(browser))["totals"] != moved["totals"] and s, 30, "totals move"
    )
    # Ages count on in the browser as the server words them (dashboard.js's describe()).
    ages = {90: "1 minute old", 3 * 3600 + 10: "3 hours old", 2 * 86400 + 10: "2 days old"}
    assert {seconds: describe_age(seconds) for seconds in ages} == ages
    browser.js(ADD_AGES.replace("AGES", json.dumps(list(ages))))
    shown_ages = browser.until(
        lambda: (t := browser.js(READ_AGES)) and all(t) and t, 10, "the ages counted"
    )
    assert shown_ages == list(ages.values())
    assert later["same_page"]
    assert browser.js("return window.scrollY") == scrolled
    assert browser.js("return window.getSelection().toString()") == selected


def test_state_changes_show_within_a_second_of_the_api(site: Fleet, browser: Browser):
    """An operator forces the breaker open from a shell: badge, banner and reason change
    together, within about a second of the API saying so; a reset heals the page alike."""
    open_live_dashboard(browser)
    browser.js(RECORD_CHANGES)
    cookie = f"sessionid={browser.driver.get_cookie('sessionid')['value']}"
    changes: list[dict] = []
    for action, want in (("open", "open"), ("reset", "closed")):
        changes += browser.js("const seen = window.qdChanges; window.qdChanges = []; return seen")
        api = ApiWatch(site, cookie, want)
        with api:
            site.manage("breaker", action, "questdb", "--reason", "browser test")
            knew = api.wait(30)
        seen = browser.until(lambda w=want: shown(browser, w), 30, f"the page shows {want}")
        lag = seen["at"] / 1000 - knew
        print(f"breaker {want}: the page showed it {lag:.2f} s after the API said so")
        assert lag < 2.5, lag  # one pulse (1 s) and its request, on a busy machine
        if want == "open":
            assert seen["banner"] and seen["reason"], seen  # together, in one change
            assert "An operator switched QuestDB off" in seen["banner"], seen
        else:
            browser.until(lambda: all_ok(dashboard(browser)), 30, "fresh again after the reset")
        assert browser.js("return window.qdSamePage") is True
    changes += browser.js("return window.qdChanges")
    torn = [c for c in changes if c["breaker"] == "open" and not (c["banner"] and c["reason"])]
    assert not torn, torn  # never the badge without the banner and its reason


def test_without_javascript_the_page_refreshes_itself(browser: Browser):
    browser.driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        browser.visit(DASHBOARD)
        page = browser.driver.find_element(By.ID, "qd")
        assert len(browser.driver.find_elements(By.CSS_SELECTOR, "h2 .pill")) == SECTIONS

        def reloaded() -> bool:
            try:
                page.tag_name  # noqa: B018 - fails once the page it came from is gone
            except StaleElementReferenceException:
                return True
            return False

        browser.until(reloaded, 30, "the <noscript> refresh (3 s here)")
    finally:
        browser.driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})


def test_dashboard_goes_down_with_questdb_and_heals(site: Fleet, browser: Browser):
    """QuestDB really stopped: the open page turns degraded by itself, the prices freeze
    while the ages grow; QuestDB started: it heals and the prices move again."""
    open_live_dashboard(browser)
    localdb.stop()  # really stopped: the JVM is gone
    try:
        down = browser.until(
            lambda: (s := dashboard(browser))["banner"]
            and [x["status"] for x in s["sections"]] == ["DEGRADED"] * SECTIONS and s,
            60, "the outage banner and every section degraded, without a reload",
        )  # fmt: skip
        assert down["same_page"]
        banner = down["banner"]
        assert banner.startswith("QuestDB unavailable: showing data from"), banner
        assert re.search(r"\d+ seconds? old\.", banner), banner
        assert any(words in banner for words in PEOPLE_WORDS), banner  # the reason, in words
        for section in down["sections"]:
            assert re.fullmatch(r"as of \d\d:\d\d:\d\d UTC, \d+ (second|minute)s? old",
                                section["age"]), section  # fmt: skip
            assert section["reason"] is None, section  # said once, in the banner
        for code in ("database_unavailable", "circuit_open", "Failed to get_"):
            assert code not in down["body"]  # machine codes stay in the JSON
        age = banner_age(down)
        older = browser.until(
            lambda: banner_age(s := dashboard(browser)) >= age + 3 and s, 30, "the age grows"
        )
        assert older["prices"] == down["prices"] and older["times"] == down["times"]  # frozen
        assert older["same_page"]
        browser.shot("03-dashboard-outage")
        audit(browser, DASHBOARD, "outage")

        outage = browser.reload_until(
            BREAKERS, BREAKER_STATE, lambda s: s["outage"] and len(s["processes"]) == 3,
            60, "the breaker page in the outage, with three processes",
        )  # fmt: skip
        assert outage["state"] in ("open", "half_open")
        assert outage["outage"].startswith("Open for")
        assert "Next probe at" in outage["outage"]
        assert re.fullmatch(r"in \d+ s|due now", outage["countdown"]), outage["countdown"]
        assert sorted(p.split()[0] for p in outage["processes"]) == ["celery", "web", "web"]
        assert "consecutive" not in outage["figures"]  # no "Consecutive failures 0" when open
        assert int(outage["figures"]["failure-600"]) > 0  # published by the processes that failed
        browser.shot("04-breaker-outage")
        audit(browser, BREAKERS, "outage")
        audit(browser, "/admin/questdash/price/", "outage")  # the last good first page
        for theme in THEMES:
            assert not any(blocking(theme).values()), json.dumps(blocking(theme), indent=1)
        browser.visit(DASHBOARD)
        browser.js("window.qdSamePage = true;")
    finally:
        localdb.start()

    healed = browser.until(
        lambda: all_ok(s := dashboard(browser)) and s["times"] != down["times"] and s,
        90, "healed by itself, the prices moving again",
    )  # fmt: skip
    assert healed["same_page"]
    assert "QuestDB unavailable" not in healed["body"]
    browser.shot("05-dashboard-healed")


def banner_age(state: dict) -> int:
    """Seconds in the banner's 'N seconds old' (minutes and more in seconds too)."""
    found = re.search(r"(\d+) (second|minute|hour)s? old", state["banner"] or "")
    assert found, state["banner"]
    return int(found.group(1)) * {"second": 1, "minute": 60, "hour": 3600}[found.group(2)]


class ApiWatch:
    """Polls the JSON API every 50 ms from another thread; the moment it first shows ``want``."""

    def __init__(self, site: Fleet, cookie: str, want: str) -> None:
        self.site, self.cookie, self.want = site, cookie, want
        self.knew: float | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ApiWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=10)

    def _watch(self) -> None:
        while not self.done.is_set() and self.knew is None:
            answer = request(self.site.base_url, "/api/dashboard/latest-prices/", timeout=5,
                             cookie=self.cookie)  # fmt: skip
            if answer.status in (200, 503) and json.loads(answer.body)["breaker"] == self.want:
                self.knew = time.time()
            self.done.wait(0.05)

    def wait(self, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while self.knew is None:
            assert time.monotonic() < deadline, f"the API never said {self.want}"
            time.sleep(0.05)
        return self.knew


def shown(browser: Browser, want: str) -> dict | None:
    """The first recorded change of the page that shows the breaker ``want``, if any."""
    for change in browser.js("return window.qdChanges"):
        if change["breaker"] == want:
            return change
    return None


def test_breaker_figures_move_while_toxiproxy_resets_every_connection(
    site: Fleet, browser: Browser, fleet_proxy
):
    browser.visit(BREAKERS)
    before = browser.until(lambda: breaker_state(browser), 30, "the breaker page")
    assert before["scope"] == "fleet" and before["timeline"] > 0
    start = {k: int(before["figures"][k]) for k in ("failure-600", "rejected-600")}
    with site.load(clients=3, pause=0.3):
        fleet_proxy.reset_peer()
        try:
            during = browser.reload_until(
                BREAKERS, BREAKER_STATE,
                lambda s: int(s["figures"]["failure-60"]) > 0
                and int(s["figures"]["failure-600"]) > start["failure-600"]
                and int(s["figures"]["rejected-600"]) > start["rejected-600"],
                60, "failures and rejections counted across the fleet",
            )  # fmt: skip
            assert float(during["figures"]["error-rate-60"].split()[0]) > 0
            browser.shot("06-breaker-under-fault")
        finally:
            fleet_proxy.heal()
        browser.reload_until(
            BREAKERS, BREAKER_STATE,
            lambda s: s["state"] == "closed" and int(s["figures"]["success-10"]) > 0,
            60, "closed again, and successes in the last 10 s",
        )  # fmt: skip

    # The same figures and history whichever worker answers. Failures and rejections stop
    # moving once the breaker is closed and the last reports are in (a second or two);
    # successes go on, with the beat.
    settled: dict[str, Any] = {}

    def settled_for_3_seconds() -> bool:
        browser.visit(BREAKERS)
        figures = breaker_state(browser)["figures"]
        now = (figures["failure-600"], figures["rejected-600"])
        if settled.get("figures") != now:
            settled.update(figures=now, since=time.monotonic())
        return time.monotonic() - settled["since"] >= 3

    browser.until(settled_for_3_seconds, 60, "failures and rejections settled")
    seen: dict[str, dict] = {}

    def both_workers() -> bool:
        browser.visit(BREAKERS)
        state = breaker_state(browser)
        seen[state["answered"]] = state
        return len([a for a in seen if a.startswith("Answered by web")]) >= 2

    browser.until(both_workers, 60, "pages from both gunicorn workers")
    first, second = (seen[a] for a in sorted(seen) if a.startswith("Answered by web"))
    for key in ("failure-600", "rejected-600", "longest-open"):
        assert first["figures"][key] == second["figures"][key], key
    assert first["history"] == second["history"] and first["history"]
    assert sorted(first["processes"]) == sorted(second["processes"])
    browser.shot("07-breaker-healed")


def test_force_open_and_reset_from_the_page(site: Fleet, browser: Browser):
    def click(action: str, reason: str = "") -> dict:
        browser.visit(BREAKERS)
        card = browser.driver.find_element(By.ID, "breaker-questdb")
        if reason:
            card.find_element(By.NAME, "reason").send_keys(reason)
        card.find_element(By.CSS_SELECTOR, f"button[value={action}]").click()
        return browser.until(
            lambda: (s := breaker_state(browser)) and s["messages"] and s, 30, f"{action} done"
        )

    def press(action: str) -> dict:
        browser.visit(BREAKERS)
        browser.driver.find_element(By.NAME, "reason").send_keys("")  # the keyboard is here
        for _ in range(10):
            active = browser.driver.switch_to.active_element
            if active.get_attribute("value") == action:
                break
            active.send_keys(Keys.TAB)
        else:
            raise AssertionError(f"Tab never reached the {action} button")
        assert browser.js(FOCUS_RING) != "none"  # where the keyboard is, visibly
        active.send_keys(Keys.ENTER)
        return browser.until(
            lambda: (s := breaker_state(browser)) and s["messages"] and s, 30, f"{action} done"
        )

    page = browser.reload_until(BREAKERS, BREAKER_STATE, lambda s: s["token"], 30, "a form")
    session = browser.driver.get_cookie("sessionid")["value"]
    forged = request(site.base_url, f"{BREAKERS}questdb/force-open/", timeout=10,
                     cookie=f"sessionid={session}", form="reason=no+token")  # fmt: skip
    assert forged.status == 403  # no CSRF token: refused
    assert page["state"] == "closed"

    opened = click("force-open", "browser test: forced on purpose")
    assert (
        "Breaker questdb: Forced open: every call fails fast (was closed, now open)."
        in (opened["messages"])
    )
    assert opened["state"] == "open"
    assert opened["history"][0].split("\t")[2:4] == ["open", "operator staff"]
    assert opened["history"][0].endswith("forced open: browser test: forced on purpose")
    assert "no probes until an operator resets it" in opened["outage"]
    browser.shot("08-breaker-forced-open")

    browser.visit("/admin/")
    recent = browser.driver.find_element(By.ID, "recent-actions-module").text
    assert "questdb" in recent

    reset = press("reset")  # the keyboard alone: Tab to the button, Enter
    assert (
        "Breaker questdb: Reset: closed, counts cleared (was open, now closed)."
        in (reset["messages"])
    )
    assert reset["state"] == "closed"
    assert reset["history"][0].split("\t")[2:4] == ["closed", "operator staff"]

    with sqlite3.connect(site.workdir / "db.sqlite3") as db:
        log = db.execute(
            "SELECT u.username, l.change_message FROM django_admin_log l"
            " JOIN auth_user u ON u.id = l.user_id WHERE u.username = 'staff' ORDER BY l.id"
        ).fetchall()
    assert log == [
        ("staff", "questdb: Forced open: every call fails fast (was closed, now open)."
                  " Reason: browser test: forced on purpose"),
        ("staff", "questdb: Reset: closed, counts cleared (was open, now closed)."),
    ]  # fmt: skip


@pytest.mark.parametrize("path", [DASHBOARD, BREAKERS, "/admin/questdash/price/"])
def test_every_action_is_reached_by_keyboard(browser: Browser, path: str):
    """Tab from the top of the page reaches every link, button and field of its content,
    each with a visible focus ring."""
    browser.visit(path)
    missed, unringed = browser.tab_through("#content")
    assert not missed, missed
    assert not unringed, unringed


def test_no_console_errors_on_any_page(browser: Browser):
    """Every staff page once more, each fully loaded (its scripts ran, its icon was asked for)."""
    for path in ("/admin/", DASHBOARD, BREAKERS, "/ht/"):
        browser.visit(path)
        browser.until(lambda: browser.js("return document.readyState") == "complete", 30, path)
        assert browser.driver.title, path
    browser.collect_console()
    assert not browser.errors, browser.errors
    assert {"/admin/", "/admin/login/", DASHBOARD, BREAKERS} <= browser.pages


def test_a_dashboard_whose_session_ended_goes_to_the_login(browser: Browser):
    """live/ answers 401 once the session is gone: the page reloads into the admin's login."""
    browser.visit(DASHBOARD)
    session = browser.driver.get_cookie("sessionid")
    browser.driver.delete_cookie("sessionid")
    try:
        browser.until(lambda: "/admin/login/" in browser.driver.current_url, 30, "the login page")
        browser.collect_console()
        expected = [e for e in browser.errors if "live/" in e["message"] and "401" in e["message"]]
        assert len(expected) <= 1, browser.errors  # the one refused look, then the login
        browser.errors = [e for e in browser.errors if e not in expected]
    finally:
        browser.driver.add_cookie({k: session[k] for k in ("name", "value", "path")})
