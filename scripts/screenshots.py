"""The README's screenshots of the dashboard: light and dark, up and a minute into an outage.

Runs the site as `make run` does (gunicorn, a Celery worker with its beat,
the price feed; the demo's SQLite cache) on the test ports, logs in through
the admin's form in headless chromium, takes the dashboard in both themes,
stops QuestDB for real, waits OUTAGE seconds with the page open (it updates
itself), takes both themes again, and starts QuestDB. The pictures go to
docs/. Needs what `make test` installs (chromium, chromium-driver).

Run: .venv/bin/python scripts/screenshots.py [--outage 60]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("DJANGO_LOG_LEVEL", "CRITICAL")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

from questdash import localdb  # noqa: E402
from testkit.fleet import DASHBOARD, CeleryWorker, Fleet, PriceFeedProcess  # noqa: E402
from tests.browser import THEMES, Browser  # noqa: E402

DOCS = ROOT / "docs"


def take(browser: Browser, name: str) -> None:
    for theme in THEMES:
        browser.theme(theme)
        browser.visit(DASHBOARD)
        time.sleep(2)  # the page's first update and its ages, as a person would see it
        shutil.copy(browser.shot(f"docs-{name}-{theme}"), DOCS / f"dashboard-{name}-{theme}.png")
    browser.theme("auto")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=60.0, help="seconds QuestDB is down")
    args = parser.parse_args()
    localdb.fetch()
    call_command("questdb", "start")
    call_command("questdb", "seed")
    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp:
        site = Fleet(workdir=Path(tmp), questdb_port=settings.QUESTDB_PORT, redis_url="",
                     workers=2, extra_env={"DASHBOARD_FRESH_FOR": "2"})  # fmt: skip
        site.prepare()
        site.manage("collectstatic", "--noinput", "-v", "0")  # as `make run` does
        site.start()
        processes = [CeleryWorker(site), PriceFeedProcess(site)]
        for process in processes:
            process.start()
        browser = Browser(site.base_url)
        try:
            browser.visit("/admin/login/")
            browser.driver.find_element(By.ID, "id_username").send_keys(site.USERNAME)
            browser.driver.find_element(By.ID, "id_password").send_keys(site.password)
            browser.driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
            time.sleep(20)  # the feed's ticks and the beat's refresh on the page
            take(browser, "up")
            localdb.stop()
            try:
                browser.visit(DASHBOARD)
                time.sleep(args.outage)
                take(browser, "outage")
            finally:
                localdb.start()
        finally:
            browser.quit()
            for process in processes:
                process.stop()
            site.stop()
    print("Screenshots in docs/: " + ", ".join(sorted(p.name for p in DOCS.glob("dashboard-*"))))


if __name__ == "__main__":
    main()
