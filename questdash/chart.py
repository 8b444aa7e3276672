"""A small inline-SVG line chart of recent prices: no JavaScript, no CDN.

Prices differ by orders of magnitude (EURUSD to BTC), so each line shows the
change in percent since the first bucket of the window.

Any row may come from an old copy: a point without a symbol, a time or a
finite price is left out, a symbol without a non-zero first price is not
drawn, and changes beyond +/-1e12 % are drawn at that edge, so the SVG never
holds NaN and the page never fails on a row.
"""

from __future__ import annotations

import datetime
from collections import defaultdict

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from .dashboard import finite, present

WIDTH, HEIGHT, PAD = 760, 220, 28
EDGE = 1e12  # percent: the furthest a line is drawn
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
          "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"]  # fmt: skip


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

    def xy(t: float, v: float) -> str:
        x = PAD + (t - t0) / span_t * (WIDTH - 2 * PAD)
        y = HEIGHT - PAD - (v - v0) / span_v * (HEIGHT - 2 * PAD)
        return f"{x:.1f},{y:.1f}"

    lines = format_html_join(
        "",
        '<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}">'
        "<title>{}</title></polyline>",
        (
            (COLORS[i % len(COLORS)], " ".join(xy(t, v) for t, v in points), symbol)
            for i, (symbol, points) in enumerate(series.items())
        ),
    )
    legend = format_html_join(
        "",
        '<span class="legend-item"><i style="background:{}"></i>{} {}%</span>',
        (
            (COLORS[i % len(COLORS)], symbol, f"{points[-1][1]:+.2f}")
            for i, (symbol, points) in enumerate(series.items())
        ),
    )
    return format_html(
        '<svg class="price-chart" viewBox="0 0 {w} {h}" role="img" aria-label="{label}">'
        '<text x="4" y="14" font-size="11">{top}%</text>'
        '<text x="4" y="{bottom_y}" font-size="11">{bottom}%</text>'
        '<text x="{PAD}" y="{axis_y}" font-size="11">{start} UTC</text>'
        '<text x="{end_x}" y="{axis_y}" font-size="11" text-anchor="end">{end} UTC</text>'
        "{lines}</svg><div class=\"legend\">{legend}</div>",
        w=WIDTH, h=HEIGHT, PAD=PAD, end_x=WIDTH - PAD, axis_y=HEIGHT - 6,
        label="Price change in percent over the window",
        top=f"{v1:+.2f}", bottom=f"{v0:+.2f}", bottom_y=HEIGHT - PAD + 4,
        start=_hhmm(t0), end=_hhmm(t1), lines=lines, legend=legend,
    )  # fmt: skip


def _hhmm(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%H:%M")
