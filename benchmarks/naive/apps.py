"""Swaps the guarded runner of the dashboard and its health check for the story's retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.apps import AppConfig
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_chain, wait_fixed

from resilience.errors import is_connection_error

T = TypeVar("T")


def naive_call(operation: str, fn: Callable[[], T], *, retry: bool = True) -> T:
    """The story's decorator: 3 attempts, 100/500/1000 ms apart (the third wait never comes)."""
    retrying = Retrying(
        stop=stop_after_attempt(3 if retry else 1),
        wait=wait_chain(wait_fixed(0.1), wait_fixed(0.5), wait_fixed(1.0)),
        retry=retry_if_exception(is_connection_error),
        reraise=True,
    )
    return retrying(fn)


class NaiveConfig(AppConfig):
    name = "benchmarks.naive"
    label = "naive"

    def ready(self) -> None:
        from questdash import health, sections

        sections.questdb_call = naive_call
        health.questdb_call = naive_call
