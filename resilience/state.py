"""The breaker's state as data: the public ``State`` and the stored ``Record``.

A ``Record`` is immutable and numbered (``epoch``). Every transition writes
the next epoch, derived from the one before it, so a store only has to make
"write epoch N+1 unless someone already did" atomic to keep every process on
one history. ``HALF_OPEN`` is never stored: it is an open record whose
``open_until`` has passed, which every process can see for itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any


class State(enum.StrEnum):
    """The public state; ``.value`` is what the JSON envelope reports."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Record:
    """One stored state of a breaker; a closed record is also the permit of a closed call."""

    epoch: int
    state: State  # CLOSED or OPEN
    forced: bool = False  # forced open, or forced closed (disabled: nothing is counted)
    at: float | None = None  # wall time of the transition that wrote it
    opened_at: float | None = None  # the latest time it opened; never moves backwards
    open_until: float | None = None  # when probes may start; None when forced open
    trips: int = 0  # opens since the breaker last closed (drives backoff)
    reason: str = "initial"
    error: str | None = None  # what tripped it (scrubbed)
    error_type: str | None = None
    # Closed (or disabled): calls go through without asking anyone. A field,
    # not a property: the closed path reads it on every call.
    admits: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "admits", self.state is State.CLOSED)

    @property
    def open_duration(self) -> float:
        if self.open_until is None or self.opened_at is None:
            return 0.0
        return self.open_until - self.opened_at

    def public_state(self, now: float) -> State:
        if self.state is State.CLOSED:
            return State.CLOSED
        if self.forced or self.open_until is None or now < self.open_until:
            return State.OPEN
        return State.HALF_OPEN

    def probe_window(self, now: float) -> int:
        """Which recovery window ``now`` falls in (0 = the first after ``open_until``).

        A probe that hangs or dies would block its window for ever; a new
        window every ``open_duration`` lets the next probe through.
        """
        duration = self.open_duration or 1.0
        return int((now - (self.open_until or now)) // duration)

    def window_start(self, window: int) -> float:
        return (self.open_until or 0.0) + window * (self.open_duration or 1.0)

    def renumbered(self, epoch: int) -> Record:
        return replace(self, epoch=epoch)

    # Stored as a plain tuple so any cache backend (and any later version of
    # this class) can read it.
    def to_wire(self) -> tuple[Any, ...]:
        return (
            1,
            self.epoch,
            self.state.value,
            self.forced,
            self.at,
            self.opened_at,
            self.open_until,
            self.trips,
            self.reason,
            self.error,
            self.error_type,
        )

    @classmethod
    def from_wire(cls, wire: Any) -> Record | None:
        if not isinstance(wire, tuple | list) or len(wire) < 11 or wire[0] != 1:
            return None
        _, epoch, state, forced, at, opened_at, open_until, trips, reason, error, kind = wire[:11]
        return cls(
            epoch=int(epoch),
            state=State(state),
            forced=bool(forced),
            at=at,
            opened_at=opened_at,
            open_until=open_until,
            trips=int(trips),
            reason=str(reason),
            error=error,
            error_type=kind,
        )


def initial_record(epoch: int = 0) -> Record:
    """A breaker nobody has written to yet: closed."""
    return Record(epoch=epoch, state=State.CLOSED)


@dataclass(frozen=True, slots=True)
class Change:
    """A transition a store applied to this process's view."""

    old: Record
    new: Record
    performed: bool  # True: this process wrote it; False: seen in the shared store
