"""The breaker page's last hour as SVG: a band per state, a bar per minute with calls, the
error rate; each says what it is on hover, and no state is told by colour alone."""

from __future__ import annotations

import re

from django.template.loader import render_to_string

from resilience.fleet import HOUR, Band, Minute
from resilience.timeline import state_timeline

NOW = 1_700_003_600.0  # 2023-11-14 23:13:20 UTC


def drawn(bands: list[Band], minutes: tuple[Minute, ...] = (), key: str = "cb") -> str:
    """The timeline as the breaker page draws it."""
    return render_to_string(
        "resilience/timeline.svg", {"t": state_timeline(bands, minutes, NOW, key)}
    )


def bands_of(svg: str) -> list[tuple[str, float, float, str]]:
    return [
        (state, float(x), float(width), title)
        for state, x, width, title in re.findall(
            r'<rect class="band band-(\w+)" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"'
            r"[^>]*><title>([^<]+)</title>",
            svg,
        )
    ]


def test_each_state_is_a_band_in_time_order_and_says_when():
    bands = [
        Band("closed", NOW - HOUR, NOW - 600),
        Band("open", NOW - 600, NOW - 570),
        Band("half_open", NOW - 570, NOW - 565),
        Band("closed", NOW - 565, NOW),
    ]
    svg = drawn(bands)
    assert svg.startswith("<svg")
    found = bands_of(svg)
    assert [state for state, *_ in found] == ["closed", "open", "half_open", "closed"]
    xs = [x for _, x, _, _ in found]
    assert xs == sorted(xs)
    widths = {state: width for state, _, width, _ in found[:3]}
    assert widths["closed"] > 50 * widths["open"] > 0  # 50 minutes against 30 s
    assert widths["half_open"] >= 2.0  # five seconds still show on an hour's scale
    assert found[1][3] == "open 23:03:20 to 23:03:50 UTC"
    assert found[2][3].startswith("half-open ")


def test_open_and_half_open_are_patterned_not_only_coloured():
    """WCAG 1.4.1: a person who cannot tell red from green still tells open from closed."""
    bands = [
        Band("closed", NOW - HOUR, NOW - 600),
        Band("open", NOW - 600, NOW - 570),
        Band("half_open", NOW - 570, NOW - 565),
    ]
    svg = drawn(bands, key="cb-payments")
    fills = dict(re.findall(r'<rect class="band band-(\w+)"[^>]*fill="([^"]+)"', svg))
    assert fills["closed"].startswith("#")
    assert fills["open"] == "url(#cb-payments-open)"
    assert fills["half_open"] == "url(#cb-payments-half_open)"
    patterns = re.findall(r'<pattern id="([\w-]+)"', svg)
    assert patterns == ["cb-payments-open", "cb-payments-half_open"]
    # Two timelines on one page never share an id.
    assert not set(patterns) & set(re.findall(r'<pattern id="([\w-]+)"', drawn(bands, key="cb-x")))


def test_calls_per_minute_and_the_error_rate():
    minutes = (
        Minute(NOW - 180, calls=100, failures=0, ran=100),
        Minute(NOW - 120, calls=50, failures=25, ran=50),
        Minute(NOW - 60, calls=0, failures=0, ran=0),
    )
    svg = drawn([Band("closed", NOW - HOUR, NOW)], minutes)
    bars = re.findall(r'<rect class="volume"[^>]*height="([\d.]+)"[^>]*><title>([^<]+)<', svg)
    assert [title for _, title in bars] == [
        "23:10 UTC: 100 calls, 0 failed",
        "23:11 UTC: 50 calls, 25 failed",
    ]  # a minute without calls draws no bar
    assert float(bars[0][0]) == 2 * float(bars[1][0])  # heights on one scale
    rates = re.findall(r"<title>(\d\d:\d\d) UTC: (\d+) % of (\d+) calls failed</title>", svg)
    assert rates == [("23:10", "0", "100"), ("23:11", "50", "50")]
    assert 'class="error-rate"' in svg and "<polyline" in svg
