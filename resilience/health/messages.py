"""How a failed check reads: one line, scrubbed of secrets."""

from __future__ import annotations

from health_check.exceptions import ServiceUnavailable

from ..clock import iso_utc
from ..errors import scrub


def iso_or_unknown(timestamp: float | None) -> str:
    return iso_utc(timestamp) or "unknown"


def one_line(text: str) -> str:
    """A driver's multi-line message on one line, scrubbed of secrets."""
    return " ".join(scrub(text).split())


def unavailable(message: str) -> ServiceUnavailable:
    return ServiceUnavailable(one_line(message))
