"""The breaker page shows what the rules of issue 20 see: the window's rates and half-open progress.

Rendered from a card as the admin view builds it (the view itself, its
permissions and its actions are tested in tests/test_breaker_page.py).
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template.loader import render_to_string
from django.test import RequestFactory

from resilience.admin import breaker_card
from resilience.registry import get_breaker

from .conftest import outcomes


def page(breaker) -> str:
    request = RequestFactory().get("/admin/resilience/circuitbreaker/")
    request.user = AnonymousUser()
    context = {"cards": [breaker_card(breaker)], "refresh_seconds": 5, "actions": []}
    return render_to_string("resilience/breakers.html", context, request=request)


def figure(html: str, name: str) -> str:
    found = re.search(rf'data-figure="{name}">([^<]*)<', html)
    assert found, f"no figure {name} in the page"
    return found.group(1)


@pytest.fixture
def rules(settings):
    settings.RESILIENCE = {
        "FAILURE_THRESHOLD": None,
        "FAILURE_RATE": 50,
        "SLOW_CALL_RATE": 80,
        "SLOW_CALL_DURATION": 0.5,
        "MINIMUM_CALLS": 4,
        "WINDOW": 20,
        "HALF_OPEN_MAX_CALLS": 3,
        "SUCCESS_THRESHOLD": 2,
    }


def test_the_window_s_calls_and_rates_while_closed(rules):
    breaker = get_breaker("figures")
    outcomes(breaker, "..x")
    html = page(breaker)
    assert figure(html, "window-calls") == "3"
    assert figure(html, "window-failure-rate") == "33.3 %"
    assert figure(html, "window-slow-rate") == "0.0 %"
    assert "opens at 50 %" in html and "slower than 0.5 s" in html
    assert "the rates count from 4 calls" in html
    assert 'data-figure="consecutive"' not in html  # that rule is off


def test_half_open_progress(rules):
    breaker = get_breaker("figures")
    breaker.half_open()
    breaker.record_success(breaker.acquire())
    breaker.acquire()  # a second probe, still running
    html = page(breaker)
    assert (figure(html, "probes-taken"), figure(html, "probe-successes")) == ("2", "1")
    assert "of 3; succeeded" in html and "of the 2 that close it" in html
    assert 'data-figure="window"' not in html  # no window while not closed
