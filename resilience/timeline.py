"""The breaker's last hour as an inline SVG: state bands, call volume and error rate.

Like the dashboard's price chart: no JavaScript, no CDN, nothing to load.
Closed, open and half-open are coloured bands behind the figures (as
Hystrix's dashboard coloured a circuit green to red); the fleet's calls per
minute are grey bars, its error rate a red line on a 0-100 % scale. Each
band and bar says what it is on hover (``<title>``).
"""

from __future__ import annotations

import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from .fleet import HOUR, MINUTE, Band, Minute

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 760, 150, 34, 34, 8, 22
BAND_COLOURS = {
    "closed": "#c8e6c9",
    "open": "#ffcdd2",
    "half_open": "#ffe0b2",
    "unknown": "#eeeeee",
}
MIN_MARK = 2.0  # px: an open of a few seconds is still seen on an hour's scale
BAND_NAMES = {"closed": "closed", "open": "open", "half_open": "half-open", "unknown": "unknown"}


def _hhmm(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%H:%M")


def _hhmmss(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%H:%M:%S")


def state_timeline(bands: list[Band], minutes: tuple[Minute, ...], now: float) -> SafeString:
    """The SVG for the hour before ``now`` (times on the store's clock)."""
    start = now - HOUR
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (min(max(t, start), now) - start) / HOUR * plot_w

    def n(value: float) -> str:  # format_html escapes its arguments: numbers go as text
        return f"{value:.1f}"

    rects = format_html_join(
        "",
        '<rect class="band band-{}" x="{}" y="{}" width="{}" height="{}" fill="{}">'
        "<title>{} {} to {} UTC</title></rect>",
        (
            (
                band.state,
                n(x(band.start)),
                TOP,
                n(max(0.5 if band.state == "closed" else MIN_MARK, x(band.end) - x(band.start))),
                plot_h,
                BAND_COLOURS.get(band.state, "#eee"),
                BAND_NAMES.get(band.state, band.state),
                _hhmmss(band.start),
                _hhmmss(band.end),
            )
            for band in bands
        ),
    )
    busiest = max((m.calls for m in minutes), default=0) or 1
    bar_w = plot_w / (HOUR / MINUTE)
    bars = format_html_join(
        "",
        '<rect class="volume" x="{}" y="{}" width="{}" height="{}" '
        'fill="#78909c"><title>{} UTC: {} calls, {} failed</title></rect>',
        (
            (
                n(x(m.start) + 0.5),
                n(TOP + plot_h * (1 - m.calls / busiest)),
                n(max(0.5, bar_w - 1)),
                n(plot_h * m.calls / busiest),
                _hhmm(m.start),
                m.calls,
                m.failures,
            )
            for m in minutes
            if m.calls
        ),
    )
    points = " ".join(
        f"{x(m.start + MINUTE / 2):.1f},{TOP + plot_h * (1 - m.error_rate / 100):.1f}"
        for m in minutes
        if m.error_rate is not None
    )
    dots = format_html_join(
        "",
        '<circle class="error-rate" cx="{}" cy="{}" r="2" fill="#c62828">'
        "<title>{} UTC: {} % of {} calls failed</title></circle>",
        (
            (
                n(x(m.start + MINUTE / 2)),
                n(TOP + plot_h * (1 - m.error_rate / 100)),
                _hhmm(m.start),
                f"{m.error_rate:.0f}",
                m.ran,
            )
            for m in minutes
            if m.error_rate is not None
        ),
    )
    line = (
        format_html(
            '<polyline class="error-rate" fill="none" stroke="#c62828" stroke-width="1.5" '
            'points="{}"><title>error rate per minute</title></polyline>{}',
            points,
            dots,
        )
        if points
        else ""
    )
    return format_html(
        '<svg class="cb-timeline" viewBox="0 0 {w} {h}" role="img" aria-label="{label}">'
        "{rects}{bars}{line}"
        '<text x="{right}" y="{top_y}" font-size="10" text-anchor="start">100%</text>'
        '<text x="{right}" y="{bottom_y}" font-size="10" text-anchor="start">0%</text>'
        '<text x="2" y="{top_y}" font-size="10">{busiest}</text>'
        '<text x="2" y="{bottom_y}" font-size="10">0</text>'
        '<text x="{left}" y="{axis_y}" font-size="10">{first} UTC</text>'
        '<text x="{end}" y="{axis_y}" font-size="10" text-anchor="end">{last} UTC</text>'
        "</svg>",
        w=WIDTH, h=HEIGHT, rects=rects, bars=bars, line=line,
        label="Breaker state, calls per minute and error rate over the last hour",
        right=WIDTH - RIGHT + 3, left=LEFT, end=WIDTH - RIGHT, top_y=TOP + 9,
        bottom_y=TOP + plot_h, axis_y=HEIGHT - 6, busiest=busiest if busiest > 1 else "",
        first=_hhmm(start), last=_hhmm(now),
    )  # fmt: skip
