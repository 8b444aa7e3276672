"""Celery beat keeps the dashboard warm: every section refreshed every N seconds.

Beat sends `refresh_dashboard` every ``DASHBOARD_REFRESH_INTERVAL`` seconds
(settings.CELERY_BEAT_SCHEDULE). It records the beat heartbeat that /ht/
checks, then fans out one `refresh_section` per section. Each goes through
``questdash.sections.section(slug).refresh()``: the same cached-fallback
service, guard and "questdb" breaker as a staff request.

- Messages expire after one interval: a lagging worker drops old refreshes
  instead of running a backlog of them against a QuestDB that just came back.
- One refresh per section at a time across all workers: ``refresh()`` takes
  the section's cache lock and skips when another process holds it.
- While the breaker is open the task sends nothing to QuestDB: it skips the
  fan-out until a probe is due. Once due, the sections go through the
  breaker, which lets its half-open probe(s) through, so the dashboard heals
  with no staff traffic at all.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings

from resilience.health import record_heartbeat
from resilience.logs import Summary, log_event
from resilience.registry import get_breaker

from .db.router import QUESTDB_ALIAS
from .sections import LOADERS, section

logger = logging.getLogger("questdash.tasks")

HEARTBEAT = "celery-beat"
# A refresh that degrades does so every interval of an outage: one WARNING per section
# and minute, the rest at DEBUG (the next line says how many).
_summary = Summary(logger)


@shared_task(name="questdash.tasks.refresh_dashboard", ignore_result=True)
def refresh_dashboard() -> list[str]:
    """Beat's entry point: heartbeat, then one refresh task per section."""
    record_heartbeat(HEARTBEAT)
    breaker = get_breaker(QUESTDB_ALIAS)
    if not breaker.allows_traffic():
        snapshot = breaker.snapshot()
        log_event(
            logger,
            logging.INFO,
            "questdash.refresh.skipped",
            breaker=breaker.public_state,
            next_probe_at=snapshot.next_probe_at,
            reason="circuit breaker open: nothing sent to QuestDB until a probe is due",
        )
        return []
    interval = settings.DASHBOARD_REFRESH_INTERVAL
    for slug in LOADERS:
        refresh_section.apply_async((slug,), expires=interval)
    return list(LOADERS)


@shared_task(name="questdash.tasks.refresh_section", ignore_result=True)
def refresh_section(slug: str) -> str:
    """Refresh one section's last-known-good copy through the guard; returns its status."""
    started = time.monotonic()
    envelope = section(slug).refresh()
    data = {
        "section": slug,
        "status": envelope.status,
        "reason": envelope.reason,
        "breaker": envelope.breaker,
        "duration_ms": round((time.monotonic() - started) * 1000, 1),
    }
    if envelope.status == "ok":
        log_event(logger, logging.INFO, "questdash.refresh.done", **data)
    else:
        _summary.note((slug,), logging.WARNING, "questdash.refresh.done", **data)
    return envelope.status
