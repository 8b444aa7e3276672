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
import math
import re
import shutil
import sqlite3
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from questdash import localdb
from questdash.reasons import CIRCUIT, CIRCUIT_DEFAULT, UNREACHABLE
from testkit.fleet import DASHBOARD, CeleryWorker, Fleet, request

from .settings import TEST_ENV

pytestmark = [pytest.mark.usefixtures("questdb_server"), pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "var" / "screenshots"
BREAKERS = "/admin/resilience/circuitbreaker/"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# What this machine's headless chromium needs: no sandbox (root, containers), no GPU, /tmp
# instead of a small /dev/shm, and none of its own network chatter.
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
)  # fmt: skip
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
  body: document.body.innerText,
};
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


class Browser:
    """One headless chromium: pages, explicit waits, console errors and screenshots."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*CHROME_FLAGS, f"--user-data-dir={self.profile}", "--window-size=1280,1200"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.driver.set_page_load_timeout(60)
        self.errors: list[dict] = []
        self.pages: set[str] = set()

    def quit(self) -> None:
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)

    def visit(self, path: str) -> None:
        self.driver.get(self.base_url + path)
        self.pages.add(urllib.parse.urlsplit(self.driver.current_url).path)  # after redirects
        self.collect_console()

    def collect_console(self) -> None:
        """Console messages at level SEVERE (errors, failed loads) since the last look."""
        self.errors += [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def js(self, script: str) -> Any:
        return self.driver.execute_script(script)

    def until(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll ``condition`` until it returns something true (a page may reload meanwhile)."""
        ignored = (StaleElementReferenceException, WebDriverException)
        wait = WebDriverWait(self.driver, timeout, poll_frequency=0.5, ignored_exceptions=ignored)
        return wait.until(lambda _: condition(), message=f"not within {timeout:g} s: {what}")

    def reload_until(self, path: str, read: str, check: Callable[[Any], bool], timeout: float,
                     what: str) -> Any:  # fmt: skip
        """Load ``path`` again and again until the state ``read`` returns passes ``check``."""

        def look() -> Any:
            self.visit(path)
            state = self.js(read)
            return state if state is not None and check(state) else None

        return self.until(look, timeout, what)

    def shot(self, name: str) -> Path:
        """The whole page, however long (the viewport is stretched to it for the shot)."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        target = SHOTS / f"{name}.png"
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": min(6000, math.ceil(size["height"])),
             "deviceScaleFactor": 1, "mobile": False},
        )  # fmt: skip
        try:
            self.driver.save_screenshot(str(target))
        finally:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        return target


@pytest.fixture(scope="module")
def site(fleet_proxy, redis_server, tmp_path_factory) -> Iterator[Fleet]:
    """gunicorn with two workers and a Celery worker with beat, QuestDB through Toxiproxy."""
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
    yield server
    celery.stop()
    server.stop()
    for log in (server.log, celery.log):
        assert TEST_ENV["QUESTDB_PASSWORD"] not in log.read_text()


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


def test_dashboard_goes_down_with_questdb_and_heals(site: Fleet, browser: Browser):
    def all_ok(state: dict) -> bool:
        statuses = [s["status"] for s in state["sections"]]
        return state["banner"] is None and statuses == ["OK"] * SECTIONS

    up = browser.reload_until(DASHBOARD, DASHBOARD_STATE, all_ok, 60, "every section fresh")
    prices = up["prices"]
    assert prices and all(re.fullmatch(r"[\d,]+\.\d{4}", price) for price in prices), prices
    browser.shot("02-dashboard-up")

    localdb.stop()  # really stopped: the JVM is gone
    try:
        down = browser.reload_until(
            DASHBOARD, DASHBOARD_STATE,
            lambda s: s["banner"] and [x["status"] for x in s["sections"]] == ["DEGRADED"] * 4,
            60, "the outage banner and every section degraded",
        )  # fmt: skip
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
        browser.shot("03-dashboard-outage")

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
    finally:
        localdb.start()

    healed = browser.reload_until(DASHBOARD, DASHBOARD_STATE, all_ok, 90, "healed by itself")
    assert "QuestDB unavailable" not in healed["body"]
    browser.shot("05-dashboard-healed")


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

    reset = click("reset")
    assert (
        "Breaker questdb: Reset: closed, counts cleared (was open, now closed)."
        in (reset["messages"])
    )
    assert reset["state"] == "closed"
    assert reset["history"][0].split("\t")[2:4] == ["closed", "operator staff"]

    with sqlite3.connect(site.workdir / "db.sqlite3") as db:
        log = db.execute(
            "SELECT u.username, l.change_message FROM django_admin_log l"
            " JOIN auth_user u ON u.id = l.user_id ORDER BY l.id"
        ).fetchall()
    assert log == [
        ("staff", "questdb: Forced open: every call fails fast (was closed, now open)."
                  " Reason: browser test: forced on purpose"),
        ("staff", "questdb: Reset: closed, counts cleared (was open, now closed)."),
    ]  # fmt: skip


def test_no_console_errors_on_any_page(browser: Browser):
    """Every staff page once more, each fully loaded (its scripts ran, its icon was asked for)."""
    for path in ("/admin/", DASHBOARD, BREAKERS, "/ht/"):
        browser.visit(path)
        browser.until(lambda: browser.js("return document.readyState") == "complete", 30, path)
        assert browser.driver.title, path
    browser.collect_console()
    assert not browser.errors, browser.errors
    assert {"/admin/", "/admin/login/", DASHBOARD, BREAKERS} <= browser.pages
