"""Why a section is not fresh, in words for the staff who read the dashboard.

The JSON envelope's ``reason`` is for machines and engineers: a code, then
the error as the driver said it ("database_unavailable: Failed to
get_positions: connection failed: connection to server at ... refused").
The page shows a sentence instead; the code and the driver's words stay in
the JSON and the logs.
"""

from __future__ import annotations

from resilience.fallback import CIRCUIT_OPEN, DATABASE_UNAVAILABLE

QUERY_ERROR = "query_error"
REFRESH_IN_PROGRESS = "refresh_in_progress"

# (words found in the error, what staff read), first match wins.
UNREACHABLE = (
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


def in_words(reason: str | None) -> str | None:
    """A sentence for people from an envelope's machine reason (None stays None)."""
    if not reason:
        return None
    code, _, detail = reason.partition(":")
    detail = detail.lower()
    if code == CIRCUIT_OPEN:
        return _first(CIRCUIT, detail, CIRCUIT_DEFAULT)
    if code == DATABASE_UNAVAILABLE:
        return _first(UNREACHABLE, detail, "QuestDB could not be reached.")
    if code == QUERY_ERROR:
        return "QuestDB could not run this section's query; the rest of the page is unaffected."
    if code == REFRESH_IN_PROGRESS:
        return "Another request is loading this section; showing the last copy meanwhile."
    return reason


def _first(table: tuple[tuple[tuple[str, ...], str], ...], detail: str, default: str) -> str:
    for needles, words in table:
        if any(needle in detail for needle in needles):
            return words
    return default
