"""Why a section is not fresh, in words for the staff who read the dashboard.

Two readers, two forms. The JSON envelope's ``reason`` is for machines and
engineers: a code, then the error ("database_unavailable: Failed to
get_positions: connection failed: connection to server at ... refused"), and,
while the breaker is open, what opened it ("...; opened by: QuestDB rejected
the login for user admin: check QUESTDB_PASSWORD"). ``describe_failure``
words the failures a person can act on (a rejected login, an unknown host)
before they go in. The page shows ``in_words`` of the reason: a sentence,
with the code and the driver's words left to the JSON and the logs.
"""

from __future__ import annotations

import re

from django.conf import settings

from resilience.errors import Kind, classify, describe, scrub
from resilience.fallback import (
    BUDGET_SPENT,
    CACHE_SLOW,
    CIRCUIT_OPEN,
    DATABASE_UNAVAILABLE,
    OPENED_BY,
)

QUERY_ERROR = "query_error"
REFRESH_IN_PROGRESS = "refresh_in_progress"
EMPTY_NOTE = "; QuestDB's last answer, at "  # CachedFallback's, with dependency_label "QuestDB"

# libpq's words for a host name it could not resolve.
_UNKNOWN_HOST = re.compile(
    r"failed to resolve host|could not translate host name|name or service not known"
    r"|temporary failure in name resolution|nodename nor servname",
    re.IGNORECASE,
)
_REJECTED_LOGIN = re.compile(r"invalid username/password|authentication failed", re.IGNORECASE)

# (words found in the error, what staff read), first match wins.
UNREACHABLE = (
    (("rejected the login",), "QuestDB rejected the dashboard's login."),
    (("was not found",), "QuestDB's host name was not found."),
    (("refused",), "QuestDB refused the connection: it is down or restarting."),
    (("forced open",), "An operator switched QuestDB off for the dashboard (breaker forced open)."),
    (
        ("did not answer", "did not complete", "timed out", "timeout", "deadline"),
        "QuestDB did not answer in time.",
    ),
    (
        ("reset", "closed the connection", "terminated", "broken pipe", "eof"),
        "QuestDB dropped the connection.",
    ),
    (("authentication", "password"), "QuestDB refused the dashboard's login."),
)
CIRCUIT = (
    (("forced open",), "An operator switched QuestDB off for the dashboard (breaker forced open)."),
    (("half-open",), "QuestDB is being tested again after failing; this section waits its turn."),
)
CIRCUIT_DEFAULT = (
    "QuestDB failed several times in a row, so the dashboard is not asking it for a while "
    "(circuit breaker open); it tries again by itself."
)
CIRCUIT_BECAUSE = (
    "{cause} The dashboard is not asking QuestDB for a while (circuit breaker open); "
    "it tries again by itself."
)
CACHE_WORDS = (
    "The dashboard's own cache was too slow to answer in time, so QuestDB was not asked; "
    "showing the last copy."
)


def describe_failure(exc: BaseException) -> str:
    """A QuestDB failure as the envelope's reason gives it: the ones a person can act on in
    words that say what to check, the others as the driver said them (scrubbed)."""
    text = scrub(describe(exc))
    if classify(exc) is Kind.REJECTED or _REJECTED_LOGIN.search(text):
        return (
            f"QuestDB rejected the login for user {settings.QUESTDB_USER}: check QUESTDB_PASSWORD"
        )
    if _UNKNOWN_HOST.search(text):
        return f"QuestDB's host {settings.QUESTDB_HOST} was not found: check QUESTDB_HOST"
    return text


def in_words(reason: str | None) -> str | None:
    """A sentence for people from an envelope's machine reason (None stays None).

    A note that QuestDB's last answer was empty, newer than the rows shown, is
    kept as it is: staff must know those rows are older than what QuestDB said.
    """
    if not reason:
        return None
    reason, found, note = reason.partition(EMPTY_NOTE)
    words = _sentence(reason)
    if found:
        words = f"{words} {EMPTY_NOTE.lstrip('; ')}{note}."
    return words


def _sentence(reason: str) -> str:
    code, _, detail = reason.partition(":")
    detail, _, cause = detail.partition(OPENED_BY)
    lowered = detail.lower()
    if code == CIRCUIT_OPEN:
        if cause:
            return CIRCUIT_BECAUSE.format(cause=_cause_in_words(cause))
        return _first(CIRCUIT, lowered, CIRCUIT_DEFAULT)
    if code == DATABASE_UNAVAILABLE:
        return _cause_in_words(detail.strip())
    if code in (CACHE_SLOW, BUDGET_SPENT):
        return CACHE_WORDS
    if code == QUERY_ERROR:
        return "QuestDB could not run this section's query; the rest of the page is unaffected."
    if code == REFRESH_IN_PROGRESS:
        return "Another request is loading this section; showing the last copy meanwhile."
    return reason


def _cause_in_words(cause: str) -> str:
    """``describe_failure``'s words as they are (a sentence); the driver's, by their gist."""
    if cause.startswith("QuestDB") and OPENED_BY not in cause:
        return cause if cause.endswith(".") else cause + "."
    return _first(UNREACHABLE, cause.lower(), "QuestDB could not be reached.")


def _first(table: tuple[tuple[tuple[str, ...], str], ...], detail: str, default: str) -> str:
    for needles, words in table:
        if any(needle in detail for needle in needles):
            return words
    return default
