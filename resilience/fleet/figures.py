"""What the breaker page shows of the fleet: its calls summed over every process's blobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..breaker.counts import LATENCY_BOUNDS
from ..process import identity
from ..sharedcache import CacheUnavailable
from ..state import State
from .channel import BUCKET, MINUTE, Channel
from .reporter import reporter

WINDOWS = ((10, "10 s"), (60, "1 min"), (600, "10 min"))  # rolling windows of the calls
LATENCY_WINDOW = 60  # seconds of timed calls behind p50 and p99

if TYPE_CHECKING:
    from ..breaker import CircuitBreaker


@dataclass(frozen=True)
class Window:
    """Calls of the whole fleet over the last ``seconds``, by outcome."""

    label: str
    seconds: int
    success: int
    failure: int
    rejected: int
    ignored: int

    @property
    def calls(self) -> int:
        return self.success + self.failure + self.rejected + self.ignored

    @property
    def error_rate(self) -> float | None:
        """Failures over the calls that reached the dependency, in percent."""
        ran = self.success + self.failure
        return None if not ran else round(100.0 * self.failure / ran, 1)


@dataclass(frozen=True)
class ProcessView:
    """One process that shares the breaker, as it last reported."""

    id: str
    host: str
    pid: int
    role: str
    state: str
    forced: bool
    epoch: int
    uid: str
    synced_at: float | None
    reported_at: float
    healthy: bool
    me: bool = False  # the process that answers this page

    @property
    def actor(self) -> str:
        return f"{self.role} pid {self.pid}@{self.host}"


@dataclass(frozen=True)
class Minute:
    """One minute of the fleet's calls, for the timeline."""

    start: float
    calls: int
    failures: int
    ran: int  # successes + failures

    @property
    def error_rate(self) -> float | None:
        return None if not self.ran else 100.0 * self.failures / self.ran


@dataclass(frozen=True)
class LastError:
    error: str
    error_type: str | None
    at: float | None
    actor: str


@dataclass(frozen=True)
class FleetView:
    """One breaker across every process that shares its store (or this process alone)."""

    name: str
    shared: bool  # figures from every process sharing the store; else this process only
    available: bool  # the shared store answered (else: this process's own figures)
    taken_at: float
    windows: tuple[Window, ...]
    p50: float | None  # seconds, over the last minute, calls that were timed
    p99: float | None
    timed_calls: int
    processes: tuple[ProcessView, ...]
    minutes: tuple[Minute, ...]  # the last hour, oldest first
    last_error: LastError | None
    timeout: float = 15.0

    @property
    def scope(self) -> str:
        if not self.shared:
            return "this process only: the breaker's store is not shared"
        if not self.available:
            return "this process only: the shared store does not answer"
        count = len(self.processes)
        return f"{count} process{'es' if count != 1 else ''} sharing the store"

    def window(self, seconds: int) -> Window:
        return next(w for w in self.windows if w.seconds == seconds)


def fleet_view(
    breaker: CircuitBreaker, *, timeout: float | None = None, channel: Channel | None = None
) -> FleetView:
    """The fleet's figures for ``breaker``: read from the shared store (a few round trips)."""
    if timeout is None:
        from ..conf import get_config

        timeout = float(get_config()["FLEET_PROCESS_TIMEOUT"])
    channel = channel or reporter().channel(breaker.store)
    channel.add(breaker)
    if channel.shared and reporter().running:
        channel.publish(force=True)  # the answering process's own row, as of now
    now = breaker.store.now()
    available = True
    try:
        blobs = channel.blobs(now)
    except CacheUnavailable:
        available = False
        channel.publish()
        blobs = channel.own_blobs()
    return aggregate(
        breaker.name,
        blobs,
        now,
        shared=channel.shared,
        available=available,
        timeout=timeout,
        me=channel.identity.id,
    )


def aggregate(
    name: str,
    blobs: list[dict[str, Any]],
    now: float,
    *,
    shared: bool = True,
    available: bool = True,
    timeout: float = 15.0,
    me: str | None = None,
) -> FleetView:
    """Sum the blobs of every process for breaker ``name`` (pure: the tests' entry point)."""
    me = me or identity().id
    sums = {seconds: [0.0] * 4 for seconds, _ in WINDOWS}
    bins = [0.0] * (len(LATENCY_BOUNDS) + 1)
    hour_start = (int(now // MINUTE) - 59) * MINUTE
    per_minute: dict[int, list[int]] = {}
    newest: dict[str, tuple[float, dict[str, Any], dict[str, Any]]] = {}
    last_error: LastError | None = None
    for blob in blobs:
        figures = blob["breakers"].get(name)
        if not isinstance(figures, dict):
            continue
        minute = blob["minute"]
        proc = blob["proc"]
        reported = blob.get("at") or 0.0
        if proc.get("id") not in newest or reported > newest[proc["id"]][0]:
            newest[proc["id"]] = (reported, proc, figures)
        error = figures.get("error")
        if error and (last_error is None or (figures.get("failed_at") or 0) > (last_error.at or 0)):
            actor = f"{proc.get('role')} pid {proc.get('pid')}@{proc.get('host')}"
            last_error = LastError(
                error, figures.get("error_type"), figures.get("failed_at"), actor
            )
        for index, bucket in (figures.get("b") or {}).items():
            start = minute * MINUTE + int(index) * BUCKET
            counts = bucket[:4]
            for seconds, total in sums.items():
                weight = _overlap(start, now, seconds)
                if weight:
                    for position in range(4):
                        total[position] += weight * counts[position]
            weight = _overlap(start, now, LATENCY_WINDOW)
            if weight:
                for position, count in bucket[4].items():
                    bins[int(position)] += weight * count
            if start >= hour_start:
                row = per_minute.setdefault(minute, [0, 0, 0])
                row[0] += sum(counts)
                row[1] += counts[1]
                row[2] += counts[0] + counts[1]
    windows = tuple(
        Window(label, seconds, *(round(value) for value in sums[seconds]))
        for seconds, label in WINDOWS
    )
    processes = tuple(
        sorted(
            (
                _process(proc, figures, reported, me)
                for reported, proc, figures in newest.values()
                if now - reported <= timeout
            ),
            key=lambda p: (p.role, p.host, p.pid),
        )
    )
    first = int(now // MINUTE) - 59
    minutes = tuple(
        Minute(m * MINUTE, *per_minute.get(m, (0, 0, 0))) for m in range(first, first + 60)
    )
    return FleetView(
        name=name,
        shared=shared,
        available=available,
        taken_at=now,
        windows=windows,
        p50=quantile(bins, 0.50),
        p99=quantile(bins, 0.99),
        timed_calls=round(sum(bins)),
        processes=processes,
        minutes=minutes,
        last_error=last_error,
        timeout=timeout,
    )


def _overlap(start: float, now: float, seconds: int) -> float:
    """How much of a bucket starting at ``start`` falls in the last ``seconds`` (0 to 1).

    A bucket wholly inside counts whole, the one in progress too; the one
    that straddles the window's start counts in proportion.
    """
    since = now - seconds
    end = start + BUCKET
    if end <= since:
        return 0.0
    if start >= since:
        return 1.0
    return (end - since) / BUCKET


def quantile(bins: list[float], q: float) -> float | None:
    """The ``q`` quantile of a binned histogram, linear within the bin (seconds)."""
    total = sum(bins)
    if total <= 0:
        return None
    target = q * total
    seen = 0.0
    for index, count in enumerate(bins):
        if count and seen + count >= target:
            low = LATENCY_BOUNDS[index - 1] if index else 0.0
            if index >= len(LATENCY_BOUNDS):
                return low  # slower than the last bound: say at least that
            high = LATENCY_BOUNDS[index]
            return low + (high - low) * (target - seen) / count
        seen += count
    return LATENCY_BOUNDS[-1]


def _process(
    proc: dict[str, Any], figures: dict[str, Any], reported: float, me: str
) -> ProcessView:
    return ProcessView(
        id=str(proc.get("id")),
        host=str(proc.get("host")),
        pid=int(proc.get("pid") or 0),
        role=str(proc.get("role")),
        state=str(figures.get("state") or State.CLOSED.value),
        forced=bool(figures.get("forced")),
        epoch=int(figures.get("epoch") or 0),
        uid=str(figures.get("uid") or ""),
        synced_at=figures.get("synced"),
        reported_at=reported,
        healthy=bool(figures.get("healthy", True)),
        me=proc.get("id") == me,
    )
