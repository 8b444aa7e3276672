"""The dashboard's filters: a missing value is a dash (NULLs from QuestDB never break a
page), ages that the page's script keeps counting, and P&L that says gain or loss in
its sign as well as its colour."""

from __future__ import annotations

import datetime
from typing import Any

from django import template
from django.template.defaultfilters import date, floatformat
from django.utils.html import format_html
from django.utils.safestring import SafeString

from questdash.dashboard import finite, present
from questdash.reasons import in_words as reason_in_words

register = template.Library()

DASH = "—"


@register.filter
def dash(value: Any) -> Any:
    """The value, or a dash for NULL, an empty string or an empty list."""
    return value if present(value) and value != [] else DASH


@register.filter
def number(value: Any, digits: str = "-2") -> str:
    """``floatformat`` of a finite number; a dash for anything else."""
    value = finite(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return DASH
    return floatformat(value, digits)


@register.filter
def when(value: Any, fmt: str = "Y-m-d H:i") -> str:
    """``date`` of a datetime; a dash for anything else."""
    return date(value, fmt) if isinstance(value, datetime.datetime) else DASH


@register.filter
def pnl(value: Any) -> str:
    """A P&L to the cent with its sign: '+1,864.00', '-819.00', '0.00'; a dash if unknown."""
    shown = number(value, "2g")
    return f"+{shown}" if shown != DASH and finite(value) > 0 else shown


@register.filter
def pnl_class(value: Any) -> str:
    """'gain' or 'loss' for the colour (the sign says it too); '' for zero or unknown."""
    value = finite(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value == 0:
        return ""
    return "gain" if value > 0 else "loss"


def describe_age(seconds: float) -> str:
    """'3 minutes old': the unit staff read at a glance (dashboard.js says it the same way)."""
    seconds = max(0, int(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} old"
    return f"{seconds} second{'s' if seconds != 1 else ''} old"


@register.filter
def age(envelope: Any) -> SafeString | str:
    """How old an envelope's data is, in an element whose age the page's script keeps counting."""
    seconds = getattr(envelope, "age_seconds", None)
    if seconds is None:
        return ""
    return format_html('<span data-age="{}">{}</span>', f"{seconds:.1f}", describe_age(seconds))


@register.filter
def in_words(reason: str | None) -> str | None:
    """An envelope's machine reason as a sentence for staff (questdash.reasons)."""
    return reason_in_words(reason)
