"""The breaker's last hour as an inline SVG: state bands, call volume and error rate.

Like the dashboard's price chart: no JavaScript, no CDN, nothing to load.
Closed, open and half-open are coloured bands behind the figures (as
Hystrix's dashboard coloured a circuit green to red), and open and half-open
are hatched and dotted as well, so that the state is never told by colour
alone (WCAG 1.4.1); the fleet's calls per minute are grey bars, its error rate
a red line on a 0-100 % scale. Each band and bar says what it is on hover
(``<title>``).

This module does the geometry; ``resilience/timeline.svg`` draws it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from .fleet import HOUR, MINUTE, Band, Minute

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 760, 150, 34, 34, 8, 22
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
BAND_COLOURS = {
    "closed": "#c8e6c9",
    "open": "#ffcdd2",
    "half_open": "#ffe0b2",
    "unknown": "#eeeeee",
}
PATTERNED = ("open", "half_open")  # the template's <pattern>s: hatched, dotted
MIN_MARK = 2.0  # px: an open of a few seconds is still seen on an hour's scale
BAND_NAMES = {"closed": "closed", "open": "open", "half_open": "half-open", "unknown": "unknown"}


def _hhmm(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%H:%M")


def _hhmmss(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%H:%M:%S")


def _n(value: float) -> str:
    return f"{value:.1f}"


@dataclass(frozen=True)
class Rect:
    """One band (a state) or bar (a minute's calls): where, and what it says on hover."""

    x: str
    y: str
    width: str
    height: str
    colour: str
    title: str
    state: str = ""

    @property
    def pattern(self) -> str:
        """The state's pattern in the template's <defs>, "" for a plain fill."""
        return self.state if self.state in PATTERNED else ""


@dataclass(frozen=True)
class Dot:
    x: str
    y: str
    title: str


@dataclass(frozen=True)
class Timeline:
    """Everything the template draws, in the SVG's own units."""

    bands: tuple[Rect, ...]
    bars: tuple[Rect, ...]
    dots: tuple[Dot, ...]
    busiest: int  # calls in the busiest minute (the bars' scale), 0 when none
    first: str  # the hour's first and last minute, UTC
    last: str
    key: str = "cb"  # prefixes the patterns' ids: one page draws one timeline per breaker
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_label: int = WIDTH - RIGHT + 3
    end: int = WIDTH - RIGHT
    top: int = TOP
    top_label: int = TOP + 9
    bottom: int = TOP + PLOT_HEIGHT
    axis: int = HEIGHT - 6

    @property
    def points(self) -> str:
        """The error-rate line through the dots."""
        return " ".join(f"{dot.x},{dot.y}" for dot in self.dots)


def state_timeline(
    bands: list[Band], minutes: tuple[Minute, ...], now: float, key: str = "cb"
) -> Timeline:
    """The hour before ``now`` (times on the store's clock), laid out; ``key`` is unique to
    the timeline on its page."""
    start = now - HOUR

    def x(t: float) -> float:
        return LEFT + (min(max(t, start), now) - start) / HOUR * PLOT_WIDTH

    def rate_y(rate: float) -> str:
        return _n(TOP + PLOT_HEIGHT * (1 - rate / 100))

    drawn = tuple(
        Rect(
            x=_n(x(band.start)),
            y=str(TOP),
            width=_n(max(0.5 if band.state == "closed" else MIN_MARK, x(band.end) - x(band.start))),
            height=str(PLOT_HEIGHT),
            colour=BAND_COLOURS.get(band.state, "#eee"),
            title=f"{BAND_NAMES.get(band.state, band.state)} {_hhmmss(band.start)} to "
            f"{_hhmmss(band.end)} UTC",
            state=band.state,
        )
        for band in bands
    )
    busiest = max((m.calls for m in minutes), default=0)
    scale = busiest or 1
    bar_width = PLOT_WIDTH / (HOUR / MINUTE)
    bars = tuple(
        Rect(
            x=_n(x(m.start) + 0.5),
            y=_n(TOP + PLOT_HEIGHT * (1 - m.calls / scale)),
            width=_n(max(0.5, bar_width - 1)),
            height=_n(PLOT_HEIGHT * m.calls / scale),
            colour="#78909c",
            title=f"{_hhmm(m.start)} UTC: {m.calls} calls, {m.failures} failed",
        )
        for m in minutes
        if m.calls
    )
    dots = tuple(
        Dot(
            x=_n(x(m.start + MINUTE / 2)),
            y=rate_y(m.error_rate),
            title=f"{_hhmm(m.start)} UTC: {m.error_rate:.0f} % of {m.ran} calls failed",
        )
        for m in minutes
        if m.error_rate is not None
    )
    busiest = busiest if busiest > 1 else 0
    return Timeline(drawn, bars, dots, busiest, _hhmm(start), _hhmm(now), key)
