"""A headless chromium for the real-browser tests: Debian's chromium, driven by Selenium.

Pages, explicit waits (a condition polled against a generous deadline, never a
sleep: the machine may be busy), console errors, screenshots, the admin's
light and dark themes, and axe-core, the accessibility engine, injected into
the page from the copy that scripts/test.sh installs from npm into var/npm.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "var" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AXE = ROOT / "var" / "npm" / "node_modules" / "axe-core"
AXE_VERSION = "4.14.1"  # as pinned in scripts/test.sh
# What this machine's headless chromium needs: no sandbox (root, containers), no GPU, /tmp
# instead of a small /dev/shm, and none of its own network chatter.
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
)  # fmt: skip
THEMES = ("light", "dark")
# The impacts that fail a page (axe also reports "moderate" and "minor").
BLOCKING = ("serious", "critical")
AXE_RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ["violations"]}).then(
  result => done(result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.join(" "), summary: n.failureSummary})),
  }))),
  error => done({error: String(error)}));
"""


# Numbers every element in a scope that the keyboard should reach, and names each.
MARK_FOCUSABLE = """
const scope = document.querySelector(SCOPE);
const nodes = Array.from(scope.querySelectorAll(
  'a[href], button, input:not([type=hidden]), select, textarea, [tabindex]'))
  .filter(n => !n.disabled && n.tabIndex >= 0 && n.getClientRects().length > 0);
window.qdFocusable = nodes.map(n => n.outerHTML.slice(0, 120));
nodes.forEach((n, i) => { n.dataset.qdTab = String(i); });
return nodes.length;
"""
FOCUSED = """
const node = document.activeElement;
if (!node || node.dataset.qdTab === undefined) return [null, null];
return [node.dataset.qdTab, getComputedStyle(node).outlineStyle];
"""


def axe_source() -> str:
    """axe.min.js as scripts/test.sh installed it; a clear failure when it did not."""
    package = AXE / "package.json"
    if not package.exists():
        raise RuntimeError(f"axe-core is not installed in {AXE}: run scripts/test.sh (npm install)")
    version = json.loads(package.read_text())["version"]
    if version != AXE_VERSION:
        raise RuntimeError(f"axe-core {version} in {AXE}, the tests pin {AXE_VERSION}")
    return (AXE / "axe.min.js").read_text()


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
        self.driver.set_script_timeout(60)  # axe-core on a long page
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

    def tab_through(self, scope: str, limit: int = 200) -> tuple[list[str], list[str]]:
        """Press Tab from the top of the page until focus comes round again.

        Returns the focusable elements in ``scope`` that Tab never reached, and
        those it reached with no visible focus ring.
        """
        count = self.js(MARK_FOCUSABLE.replace("SCOPE", json.dumps(scope)))
        self.js("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0);")
        body = self.driver.find_element(By.TAG_NAME, "body")
        reached: dict[str, str] = {}
        ActionChains(self.driver).move_to_element(body).perform()
        for _ in range(limit):
            ActionChains(self.driver).send_keys(Keys.TAB).perform()
            index, ring = self.js(FOCUSED)
            if index is not None:
                if index in reached:
                    break  # round again
                reached[index] = ring
        names = self.js("return window.qdFocusable")
        missed = [names[i] for i in range(count) if str(i) not in reached]
        unringed = [names[int(i)] for i, ring in reached.items() if ring == "none"]
        return missed, unringed

    def theme(self, theme: str) -> None:
        """The admin's theme, as its header toggle stores it (it applies from the next page)."""
        self.js(f"localStorage.setItem('theme', {json.dumps(theme)})")

    def axe(self) -> list[dict]:
        """axe-core's violations on the page as it is now (every impact)."""
        if not self.js("return typeof axe !== 'undefined'"):
            self.js(axe_source())
        result = self.driver.execute_async_script(AXE_RUN)
        if isinstance(result, dict):
            raise RuntimeError(f"axe-core failed: {result['error']}")
        return result
