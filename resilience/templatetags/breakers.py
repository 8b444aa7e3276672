"""Filters for the breaker page: times on the store's clock, durations and rates for people."""

from __future__ import annotations

import datetime
import math

from django import template

from resilience.breaker.counts import LATENCY_BOUNDS

register = template.Library()

DASH = "—"


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@register.filter
def utc_time(epoch: object, fmt: str = "%H:%M:%S") -> str:
    """Epoch seconds as a UTC time of day ("12:03:07"); a dash for none."""
    seconds = _finite(epoch)
    if seconds is None:
        return DASH
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime(fmt)


@register.filter
def duration(seconds: object) -> str:
    """Seconds as people read them: "0.4 s", "12 s", "3 min 12 s", "2 h 5 min"."""
    value = _finite(seconds)
    if value is None:
        return DASH
    value = max(0.0, value)
    if value < 10:
        return f"{value:.1f} s"
    whole = int(value)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


@register.filter
def ago(moment: object, now: object) -> str:
    """How long before ``now`` (both epoch seconds) ``moment`` was: "0.4 s ago"."""
    then, reference = _finite(moment), _finite(now)
    if then is None or reference is None:
        return DASH
    return f"{duration(reference - then)} ago"


@register.filter
def percent(value: object) -> str:
    number = _finite(value)
    return DASH if number is None else f"{number:.1f} %"


@register.filter
def latency(seconds: object) -> str:
    """Seconds as milliseconds below 1 s ("12.5 ms"), else seconds."""
    value = _finite(seconds)
    if value is None:
        return DASH
    if value >= LATENCY_BOUNDS[-1]:
        return f"≥ {LATENCY_BOUNDS[-1]:g} s"  # the slowest bin has no upper bound
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"
