"""gunicorn reads this file from the working directory: /metrics right with several workers.

Each worker is its own process with its own counters. prometheus_client's
multiprocess mode keeps them in files under PROMETHEUS_MULTIPROC_DIR, which
/metrics adds up, so a scrape sees the whole server whichever worker answers.
The directory is emptied when the master starts (stale files would add old
counts) and a dead worker's files are marked as such.
"""

import os
import shutil
from pathlib import Path

_var = Path(os.environ.get("QUESTDASH_VAR_DIR") or Path(__file__).resolve().parent / "var")
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_var / "prometheus"))


def on_starting(server):
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
