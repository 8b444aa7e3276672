"""The fleet: every process that shares a breaker's store, its calls and the state it sees.

What Hystrix showed through Turbine (calls, error rate, latency per circuit,
summed over every host), kept in the breaker's own shared store.

**Recording costs a call one counter bump.** Each breaker already counts its
calls by outcome in lock-free tallies (``breaker/counts.py``), and a guarded
call's latency goes into a fixed-bin histogram where the call is already
timed (the guard's retry run). Nothing on the call path does I/O or reads
the time for the fleet. A background thread per process (``Reporter``)
reads the tallies every ``FLEET_REPORT_INTERVAL`` (1 s) and files the
difference into the current 5-second bucket of this minute's figures.

**Publishing costs one write per interval per process and store**, and
less when idle: the minute's figures of every breaker of the process are
one blob, written with ``set`` when something changed (counts, or the
decision the process sees), or every ``HEARTBEAT`` seconds so that an idle
process stays on the list. Once a minute it also checks its roster slot
and deletes its blob that just expired (the database cache keeps expired
rows until told); once per ``ROSTER_MINUTES`` it signs the roster (a few
``add``s).

**Keys**, under the store's prefix (``resilience``)::

    fleet:roster:<block>:<slot>        a process id; one per process per 10-minute block
    fleet:figures:<minute>:<process>   that process's blob for that minute (63 min TTL)

**The roster, without key listing.** Django's cache cannot list keys, so
readers find the processes through numbered roster slots. A process signs
a block by ``add``ing its id into the lowest free slot: ``add`` is atomic on
every cache the store accepts, so two processes never hold one slot, and a
slot is never freed before its block is over (its TTL outlives the block),
so each block's slots are filled from 1 without gaps. A reader reads slots
until ``GAP`` empty ones in a row. Races and deaths, and why they are safe:

- two processes signing at once: one ``add`` wins, the loser takes the next;
- a sign whose answer was lost (a timeout) is signed again: the reader sees
  one id twice and counts it once;
- a process that dies keeps its slot until its block ends: its figures,
  which are real calls, still count for the hour; it drops off the list
  of live processes ``FLEET_PROCESS_TIMEOUT`` after its last report;
- a flushed cache loses the roster: each process checks its slot once a
  minute and signs again, so it reappears within a minute;
- a process whose clock is off writes on the store's clock (``store.now()``).

Readers sum the blobs of the last hour: rolling 10 s, 1 min and 10 min
windows, p50/p99 latency over the last minute, and per-minute volume and
errors for the timeline. A store that is not shared (``LocalStore``) keeps
the same figures in this process only, and the page says so.
"""

from .channel import BUCKET, HEARTBEAT, KEEP_MINUTES, MINUTE, ROSTER_MINUTES, Channel
from .figures import (
    FleetView,
    LastError,
    Minute,
    ProcessView,
    Window,
    aggregate,
    fleet_view,
    quantile,
)
from .history import (
    HOUR,
    Band,
    Outage,
    ProbeOutcome,
    current_outage,
    longest_open,
    recent_probes,
    state_bands,
)
from .names import reported_names
from .reporter import Reporter, reporter, watch

__all__ = [
    "BUCKET",
    "HEARTBEAT",
    "HOUR",
    "KEEP_MINUTES",
    "MINUTE",
    "ROSTER_MINUTES",
    "Band",
    "Channel",
    "FleetView",
    "LastError",
    "Minute",
    "Outage",
    "ProbeOutcome",
    "ProcessView",
    "Reporter",
    "Window",
    "aggregate",
    "current_outage",
    "fleet_view",
    "longest_open",
    "quantile",
    "recent_probes",
    "reported_names",
    "reporter",
    "state_bands",
    "watch",
]
