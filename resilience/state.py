"""The breaker's state as data: the public ``State``, the stored ``Record``, a second's ``Bucket``.

A ``Record`` is one decision: immutable, numbered (``epoch``) and named
(``uid``, with its ``parent``'s uid). Every transition writes the next
epoch, derived from the one before, so a store only has to make "write
epoch N+1 unless someone already did" atomic to keep every process on one
history. The uid is what lets a process notice that the store lost its
history (flushed, restarted empty, a write dropped): epoch numbers restart
there, uids do not.

``HALF_OPEN`` is never stored: it is an open record whose ``open_until``
has passed, which every process can see for itself. Times (``at``,
``opened_at``, ``open_until``, ``manual_at``) are on the store's clock (see
``resilience.clock.Timebase``), so hosts whose clocks disagree still agree
on when an open ends.
"""

from __future__ import annotations

import enum
import math
import secrets
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

WIRE_VERSION = 2


class State(enum.StrEnum):
    """The public state; ``.value`` is what the JSON envelope reports."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def new_uid() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class Record:
    """One decision about a breaker; a closed record is also the permit of a closed call."""

    epoch: int
    state: State  # CLOSED or OPEN
    forced: bool = False  # forced open, or forced closed (disabled: nothing is counted)
    uid: str = ""  # "" for the initial state nobody decided
    parent: str = ""  # the uid of the record this one was derived from
    at: float | None = None  # when it was decided, on the store's clock
    opened_at: float | None = None  # when this open began (None when closed)
    open_until: float | None = None  # when probes may start; None when forced open
    trips: int = 0  # opens since the breaker last closed (drives backoff)
    reason: str = "initial"
    error: str | None = None  # what tripped it (scrubbed)
    error_type: str | None = None
    manual_at: float | None = None  # the latest operator action in this history
    actor: str = ""  # who decided: a process ("web 123@host"), an operator, manage.py
    # Closed (or disabled): calls go through without asking anyone. A field,
    # not a property: the closed path reads it on every call.
    admits: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "admits", self.state is State.CLOSED)

    @property
    def initial(self) -> bool:
        return not self.uid

    @property
    def open_duration(self) -> float:
        if self.open_until is None or self.opened_at is None:
            return 0.0
        return self.open_until - self.opened_at

    def state_at(self, now: float) -> State:
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

    def outranks(self, other: Record) -> bool:
        """Whether this decision wins when two histories meet (after a flush or an outage).

        The newer decision wins, except that an operator's forced state beats
        automatic decisions made without knowing it.
        """
        if self.uid == other.uid or other.parent == self.uid:
            return False
        if self.parent == other.uid:
            return True  # derived from it: newer, whatever the clocks say
        mine = -math.inf if self.manual_at is None else self.manual_at
        theirs = -math.inf if other.manual_at is None else other.manual_at
        if self.forced and mine > theirs:
            return True
        if other.forced and theirs > mine:
            return False
        return (self.at or -math.inf, self.epoch) > (other.at or -math.inf, other.epoch)

    def outranks_in_time(self, other: Record) -> bool:
        """Decided later than ``other`` (which then came from an older memory)."""
        return (self.at or -math.inf) > (other.at or -math.inf)

    def knows_less_than(self, other: Record) -> bool:
        """Whether ``other`` carries an operator's decision that this history has not seen."""
        return (other.manual_at or -math.inf) > (self.manual_at or -math.inf)

    def told(self, manual_at: float | None, *, on: Record) -> Record:
        """The same state as a new decision on top of ``on``, knowing the operator's latest word.

        After a store lost its history, a process that knew of a later reset
        adopts the newer automatic state but must not let an older forced
        state be restored over that reset. The mark never goes down (see
        ``placed_on``): the latest of ``manual_at``, this record's and ``on``'s.
        """
        latest = _latest(manual_at, self.manual_at, on.manual_at)
        return replace(self, epoch=on.epoch + 1, uid=new_uid(), parent=on.uid, manual_at=latest)

    def successor(self, **fields: Any) -> Record:
        """The next decision: epoch + 1, a new uid, this one as parent, the operator's mark kept."""
        fields.setdefault("manual_at", self.manual_at)
        return Record(epoch=self.epoch + 1, uid=new_uid(), parent=self.uid, **fields)

    def placed_on(self, head: Record | None) -> Record:
        """The same decision (its uid kept) put on top of ``head``: restored after a loss.

        A record on top of another counts as derived from it (``outranks``
        trusts the parent whatever the clocks say), so it must know what that
        one knew: the operator's latest word (``manual_at``) never goes down a
        chain of parents. A trip restored on top of a reset it beat on time,
        without the reset's mark, would let an older forced state, met next,
        beat the trip and come back on top of the reset it predates.
        ``head`` None: an empty store.
        """
        if head is None:
            return replace(self, epoch=1, parent="")
        latest = _latest(self.manual_at, head.manual_at)
        return replace(self, epoch=head.epoch + 1, parent=head.uid, manual_at=latest)

    def shifted(self, seconds: float) -> Record:
        """Times moved by ``seconds``: decided before this process knew the store's clock."""

        def move(value: float | None) -> float | None:
            return None if value is None else value + seconds

        return replace(
            self,
            at=move(self.at),
            opened_at=move(self.opened_at),
            open_until=move(self.open_until),
            manual_at=move(self.manual_at),
        )

    # Stored as a plain tuple so any cache backend (and any later version of
    # this class) can read it.
    def to_wire(self) -> tuple[Any, ...]:
        return (
            WIRE_VERSION,
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
            self.uid,
            self.parent,
            self.manual_at,
            self.actor,
        )

    @classmethod
    def from_wire(cls, wire: Any) -> Record | None:
        if not isinstance(wire, tuple | list) or len(wire) < 11 or wire[0] not in (1, 2):
            return None
        _, epoch, state, forced, at, opened_at, open_until, trips, reason, error, kind = wire[:11]
        if wire[0] == 1 or len(wire) < 15:  # written by version 1: no uid, name it by content
            uid, parent, manual_at, actor = f"v1:{epoch}:{at}", "", None, ""
        else:
            uid, parent, manual_at, actor = wire[11:15]
        return cls(
            epoch=int(epoch),
            state=State(state),
            forced=bool(forced),
            uid=str(uid),
            parent=str(parent),
            at=at,
            opened_at=opened_at,
            open_until=open_until,
            trips=int(trips),
            reason=str(reason),
            error=error,
            error_type=kind,
            manual_at=manual_at,
            actor=str(actor),
        )


def _latest(*marks: float | None) -> float | None:
    """The latest operator's mark of several (None: no operator acted)."""
    return max((mark for mark in marks if mark is not None), default=None)


# One second's calls, packed into one integer so that a shared cache adds a
# process's share with one atomic ``incr``: 21 bits each (2 million calls a second).
BITS = 21
MASK = (1 << BITS) - 1


class Bucket(NamedTuple):
    """Calls, failures and slow calls: of one second, or summed over a window."""

    calls: int = 0
    failures: int = 0
    slow: int = 0

    def packed(self) -> int:
        return self.calls | self.failures << BITS | self.slow << 2 * BITS

    @classmethod
    def unpack(cls, value: int) -> Bucket:
        return cls(value & MASK, value >> BITS & MASK, value >> 2 * BITS & MASK)

    def __add__(self, other: object) -> Bucket:  # type: ignore[override]
        assert isinstance(other, Bucket)
        return Bucket(*(a + b for a, b in zip(self, other, strict=True)))

    def __sub__(self, other: Bucket) -> Bucket:
        return Bucket(*(a - b for a, b in zip(self, other, strict=True)))


def initial_record(epoch: int = 0) -> Record:
    """A breaker nobody has decided anything about yet: closed."""
    return Record(epoch=epoch, state=State.CLOSED)
