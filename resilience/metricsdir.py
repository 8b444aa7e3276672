"""The metrics directory can never hurt a request: found full, read-only or missing, the
process drops its metrics, says so once, and serves on.

prometheus_client's multiprocess mode keeps each process's figures in files
under ``PROMETHEUS_MULTIPROC_DIR``, created sparse and mapped into memory.
A write into a page that has no block behind it on a full disk is a SIGBUS,
not an exception: the worker dies on its first request, and every worker
started after it. So:

- at startup (``install``) the directory is checked: missing, read-only,
  not writable or nearly full, and the process drops its metrics at once;
- the files are given their blocks before they are mapped or grown
  (``posix_fallocate``, through ``AllocatedMmapedDict``): a disk that
  fills later fails that allocation with ENOSPC, an exception, and the
  process drops its metrics then;
- ``resilience.health.MetricsDirectory``, a health check, looks again on
  every /ht/ and warns while the directory is unfit or metrics are dropped.

Dropped means: no figure of this process is written any more (the other
processes' figures are still served); ``/metrics`` still answers.
"""

from __future__ import annotations

import logging
import os
import struct
import threading

from .errors import describe
from .logs import log_event

logger = logging.getLogger("resilience.metrics")

MIN_FREE = 1 << 20  # bytes: three files of 64 KiB per process, and room to grow

_lock = threading.Lock()
_dropped: dict[str, str] = {}  # "why" -> set once per process (after a fork: see below)
_dropped_pid = [os.getpid()]


def directory() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def problem(path: str | None = None) -> str | None:
    """What makes the metrics directory unfit for writing, or None."""
    path = path or directory()
    if path is None:
        return None
    if not os.path.isdir(path):
        return f"the metrics directory {path} does not exist (PROMETHEUS_MULTIPROC_DIR)"
    try:
        stats = os.statvfs(path)
    except OSError as exc:
        return f"the metrics directory {path} cannot be read: {describe(exc)}"
    if stats.f_flag & os.ST_RDONLY:
        return f"the metrics directory {path} is on a read-only filesystem"
    if not os.access(path, os.W_OK):
        return f"the metrics directory {path} is not writable by this process (uid {os.getuid()})"
    free = stats.f_bavail * stats.f_frsize
    if free < MIN_FREE:
        return f"the metrics directory {path} has {free} bytes free, under {MIN_FREE}"
    return None


def dropped() -> str | None:
    """Why this process no longer writes its metrics, or None."""
    if _dropped_pid[0] != os.getpid():  # a forked child decides for itself
        _dropped.clear()
        _dropped_pid[0] = os.getpid()
    return _dropped.get("why")


def drop(why: str, exc: BaseException | None = None) -> None:
    """Stop writing this process's metrics, and say so once."""
    with _lock:
        if dropped() is not None:
            return
        _dropped["why"] = why
    log_event(
        logger,
        logging.WARNING,
        "resilience.metrics.dropped",
        directory=directory(),
        error=why if exc is None else f"{why}: {describe(exc)}",
        error_type=type(exc).__name__ if exc is not None else "MetricsDirectoryUnfit",
        pid=os.getpid(),
        consequence="this process's figures are no longer counted; requests are served as ever",
    )


def check_at_startup() -> None:
    if (found := problem()) is not None:
        drop(found)


# prometheus_client's file, with its blocks allocated before they are written through the map.


def _allocated_class() -> type:
    from prometheus_client.mmap_dict import _INITIAL_MMAP_SIZE, MmapedDict

    class AllocatedMmapedDict(MmapedDict):
        """A metrics file whose blocks exist before they are mapped: ENOSPC, not SIGBUS."""

        def __init__(self, filename: str, read_mode: bool = False) -> None:
            if not read_mode:
                fd = os.open(filename, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    size = max(os.fstat(fd).st_size, _INITIAL_MMAP_SIZE)
                    os.posix_fallocate(fd, 0, size)
                finally:
                    os.close(fd)
            super().__init__(filename, read_mode)

        def _init_value(self, key: str) -> None:
            # The library's own arithmetic: a key, padded to 8 bytes, then two doubles.
            encoded = key.encode("utf-8")
            padded = len(encoded) + (8 - (len(encoded) + 4) % 8)
            needed = self._used + struct.calcsize(f"i{padded}sdd")
            capacity = self._capacity
            while needed > capacity:
                capacity *= 2
            if capacity != self._capacity:
                os.posix_fallocate(self._f.fileno(), 0, capacity)
            super()._init_value(key)

    return AllocatedMmapedDict


def allocate_before_mapping() -> None:
    """Make prometheus_client create and grow its files through ``AllocatedMmapedDict``."""
    from prometheus_client import values

    if not getattr(values.MmapedDict, "allocates", False):
        allocated = _allocated_class()
        allocated.allocates = True
        values.MmapedDict = allocated
