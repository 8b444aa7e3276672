"""Which breakers the fleet uses: the names every process reported in the last hour.

A breaker that only some other process has used (a Celery task's, another
host's) is still one an operator must see and act on from any process: the
page and ``manage.py breaker`` list it from here.
"""

from __future__ import annotations

from ..sharedcache import CacheUnavailable
from .reporter import reporter


def reported_names() -> set[str]:
    """Breakers that any process reported to the default shared store (none when not shared)."""
    from ..registry import default_store

    store = default_store()
    channel = reporter().channel(store)
    if not channel.shared:
        return set()
    try:
        blobs = channel.blobs(store.now())
    except CacheUnavailable:
        return set()
    return {str(name) for blob in blobs for name in blob["breakers"]}
