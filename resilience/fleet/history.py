"""The breaker's outage and its last hour, read from the shared history of decisions."""

from __future__ import annotations

from dataclasses import dataclass

from ..state import Record, State

HOUR = 3600


@dataclass(frozen=True)
class ProbeOutcome:
    at: float
    actor: str
    succeeded: bool
    error: str | None


@dataclass(frozen=True)
class Outage:
    """The breaker's current open streak: since its first open, through every failed probe."""

    opened: Record  # the decision that opened it after it was last closed
    since: float
    probes: tuple[ProbeOutcome, ...]

    def lasted(self, now: float) -> float:
        return max(0.0, now - self.since)

    @property
    def last_probe_at(self) -> float | None:
        return self.probes[-1].at if self.probes else None


def current_outage(records: list[Record]) -> Outage | None:
    """The open streak at the head of ``records`` (oldest first), or None when closed."""
    if not records or records[-1].state is not State.OPEN:
        return None
    streak: list[Record] = []
    for rec in reversed(records):
        if rec.state is not State.OPEN:
            break
        streak.append(rec)
    streak.reverse()
    first = streak[0]
    probes = tuple(
        ProbeOutcome(rec.at or 0.0, rec.actor, False, rec.error)
        for rec in streak[1:]
        if rec.reason.startswith("probe")
    )
    return Outage(first, first.opened_at or first.at or 0.0, probes)


def recent_probes(records: list[Record], limit: int = 10) -> tuple[ProbeOutcome, ...]:
    """The probes that decided something, newest last: failed (re-opened) or succeeded."""
    found = [
        ProbeOutcome(rec.at or 0.0, rec.actor, rec.state is State.CLOSED, rec.error)
        for rec in records
        if rec.reason.startswith("probe")
    ]
    return tuple(found[-limit:])


def longest_open(records: list[Record], now: float, span: float = HOUR) -> float:
    """The longest open streak (seconds) that overlaps the last ``span`` seconds."""
    longest = 0.0
    began: float | None = None
    for rec in records:
        at = rec.at or 0.0
        if rec.state is State.OPEN and began is None:
            began = rec.opened_at or at
        elif rec.state is not State.OPEN and began is not None:
            if at >= now - span:
                longest = max(longest, at - began)
            began = None
    if began is not None:
        longest = max(longest, now - began)
    return longest


@dataclass(frozen=True)
class Band:
    """A stretch of the timeline in one state."""

    state: str  # closed, open, half_open or unknown
    start: float
    end: float


def state_bands(records: list[Record], now: float, span: float = HOUR) -> list[Band]:
    """The breaker's states over the last ``span`` seconds, from its decisions (oldest first).

    An open decision is open until its ``open_until`` and half-open after it
    (probing) until the next decision. Before the oldest decision known: closed
    if that was the breaker's first, else unknown (the history was cut).
    """
    start = now - span
    bands: list[Band] = []
    if not records or (records[0].at or 0.0) > start:
        first_known = records[0].at if records else now
        before = "closed" if not records or records[0].epoch <= 1 else "unknown"
        bands.append(Band(before, start, min(now, first_known or now)))
    for index, rec in enumerate(records):
        after = records[index + 1] if index + 1 < len(records) else None
        begin = rec.at or 0.0
        end = (after.at or now) if after is not None else now
        if end <= start:
            continue
        begin = max(begin, start)
        if rec.state is State.CLOSED:
            bands.append(Band("closed", begin, end))
            continue
        until = rec.open_until if not rec.forced and rec.open_until is not None else end
        if until > begin:
            bands.append(Band("open", begin, min(until, end)))
        if until < end:
            bands.append(Band("half_open", max(until, begin), end))
    return [band for band in bands if band.end > band.start]
