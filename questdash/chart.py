"""A small inline-SVG line chart of recent prices: no JavaScript, no CDN.

Prices differ by orders of magnitude (EURUSD to BTC), so each line shows the
change in percent since the first bucket of the window.

Any row may come from an old copy: a point without a symbol, a time or a
finite price is left out, a symbol without a non-zero first price is not
drawn, and changes beyond +/-1e12 % are drawn at that edge, so the SVG never
holds NaN and the page never fails on a row.

It reads in the admin's light and dark themes alike: every line colour has
at least 3:1 contrast (WCAG's for graphics) on both backgrounds, the text is
drawn in the theme's own colour, and each line is named at its end, so that
no line is known by its colour alone.
"""

from __future__ import annotations

import datetime
from collections import defaultdict

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from .dashboard import finite, present

WIDTH, HEIGHT, PAD = 760, 220, 28
LABELS = 76  # the right margin where each line's symbol is written
LINE_GAP = 11  # vertical space each label needs
EDGE = 1e12  # percent: the furthest a line is drawn
# Relative luminance 0.13 to 0.27: 3:1 or more on the light theme's white and the dark
# theme's #121212 (tests/test_chart.py checks it).
COLORS = ["#1f77b4", "#d35400", "#2e8b2e", "#d62728", "#9467bd", "#8c564b",
          "#c2408f", "#7a7a7a", "#8a8a00", "#0e8a96", "#5b5fc7", "#b8860b"]  # fmt: skip


def percent_series(rows: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """symbol -> [(epoch seconds, % change since its first point)]."""
    by_symbol: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in rows:
        symbol, ts, price = row.get("symbol"), row.get("ts"), finite(row.get("price"))
        if present(symbol) and isinstance(ts, datetime.datetime) and isinstance(price, int | float):
            by_symbol[str(symbol)].append((ts.timestamp(), float(price)))
    series = {}
    for symbol, points in sorted(by_symbol.items()):
        points.sort()
        first = points[0][1]
        if first:
            series[symbol] = [(t, _percent(p, first)) for t, p in points]
    return series


def _percent(price: float, first: float) -> float:
    """Finite prices, first not 0: the change is finite or +/-inf, never NaN; clip it."""
    return max(-EDGE, min(EDGE, (price / first - 1) * 100))


def price_chart(rows: list[dict]) -> SafeString:
    series = percent_series(rows)
    if not series:
        return format_html('<p class="chart-empty">{}</p>', "No price history to chart.")
    times = [t for points in series.values() for t, _ in points]
    values = [v for points in series.values() for _, v in points]
    t0, t1 = min(times), max(times) or 1
    v0, v1 = min(values), max(values)
    span_t, span_v = (t1 - t0) or 1, (v1 - v0) or 1
    right = WIDTH - LABELS

    def x_of(t: float) -> float:
        return PAD + (t - t0) / span_t * (right - PAD)

    def y_of(v: float) -> float:
        return HEIGHT - PAD - (v - v0) / span_v * (HEIGHT - 2 * PAD)

    lines = format_html_join(
        "",
        '<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}">'
        "<title>{}</title></polyline>",
        (
            (_color(i), " ".join(f"{x_of(t):.1f},{y_of(v):.1f}" for t, v in points), symbol)
            for i, (symbol, points) in enumerate(series.items())
        ),
    )
    ends = {symbol: y_of(points[-1][1]) for symbol, points in series.items()}
    label_y = _spread(ends, top=PAD - 8, bottom=HEIGHT - PAD + 8)
    labels = format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}"/>'
        '<text x="{}" y="{}" font-size="10" fill="currentColor">{}</text>',
        (
            (f"{x_of(points[-1][0]):.1f}", f"{ends[symbol]:.1f}", right + 6,
             f"{label_y[symbol]:.1f}", _color(i), right + 9, f"{label_y[symbol] + 3.5:.1f}",
             symbol)
            for i, (symbol, points) in enumerate(series.items())
        ),
    )  # fmt: skip
    legend = format_html_join(
        "",
        '<span class="legend-item"><i style="background:{}"></i>{} {}%</span>',
        (
            (_color(i), symbol, f"{points[-1][1]:+.2f}")
            for i, (symbol, points) in enumerate(series.items())
        ),
    )
    return format_html(
        '<svg class="price-chart" viewBox="0 0 {w} {h}" role="img" aria-label="{label}">'
        '<g fill="currentColor" font-size="11">'
        '<text x="4" y="14">{top}%</text>'
        '<text x="4" y="{bottom_y}">{bottom}%</text>'
        '<text x="{PAD}" y="{axis_y}">{start} UTC</text>'
        '<text x="{end_x}" y="{axis_y}" text-anchor="end">{end} UTC</text></g>'
        "{lines}{labels}</svg><div class=\"legend\">{legend}</div>",
        w=WIDTH, h=HEIGHT, PAD=PAD, end_x=WIDTH - LABELS, axis_y=HEIGHT - 6, labels=labels,
        label="Price change in percent over the window",
        top=f"{v1:+.2f}", bottom=f"{v0:+.2f}", bottom_y=HEIGHT - PAD + 4,
        start=_hhmm(t0), end=_hhmm(t1), lines=lines, legend=legend,
    )  # fmt: skip


def _color(index: int) -> str:
    return COLORS[index % len(COLORS)]


def _spread(ends: dict[str, float], top: float, bottom: float) -> dict[str, float]:
    """Each line's label at its end's height, nudged apart so that no two overlap.

    Top down, each label goes at least LINE_GAP below the one above; then, if
    the last ran past ``bottom``, bottom up, each at least LINE_GAP above the
    one below. Twelve labels fit the chart's height.
    """
    order = sorted(ends, key=lambda symbol: (ends[symbol], symbol))
    placed: dict[str, float] = {}
    floor = top
    for symbol in order:
        placed[symbol] = floor = max(ends[symbol], floor)
        floor += LINE_GAP
    ceiling = bottom
    for symbol in reversed(order):
        placed[symbol] = ceiling = min(placed[symbol], ceiling)
        ceiling -= LINE_GAP
    return placed


def _hhmm(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%H:%M")
