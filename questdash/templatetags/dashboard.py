"""Filters that render a missing value as a dash: NULLs from QuestDB never break a page."""

from __future__ import annotations

import datetime
from typing import Any

from django import template
from django.template.defaultfilters import date, floatformat

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
def in_words(reason: str | None) -> str | None:
    """An envelope's machine reason as a sentence for staff (questdash.reasons)."""
    return reason_in_words(reason)
