"""gunicorn reads this file from the working directory: threaded workers, and /metrics
right with several workers.

Threaded workers (gthread, 4 threads each). A QuestDB that hangs holds a
request for up to its deadline (REQUEST_DEADLINE, 2.5 s) before the breaker
opens. A sync worker serves one request at a time, so the requests queued
behind two hung ones wait 5 s, however fast their own answer is; with
threads, a worker answers the others (from the last good copy) meanwhile.
Threads rather than gevent: psycopg and the QuestDB engine's watchdog are
plain blocking code. Each thread keeps its own persistent QuestDB
connection (4 workers x 4 threads: 16 connections). Set GUNICORN_THREADS,
or pass --threads, to change it.

A worker takes a connection only when a thread is free for it
(worker_connections = threads): otherwise gthread accepts it and queues it
behind its busy threads, hung ones included, while another worker may sit
idle; left in the listen backlog, it goes to the first worker with a free
thread. The price is no HTTP keep-alive (a keep-alive connection would hold
a slot): the usual reverse proxy in front of gunicorn keeps its clients'.

Each worker is its own process with its own counters. prometheus_client's
multiprocess mode keeps them in files under PROMETHEUS_MULTIPROC_DIR, which
/metrics adds up, so a scrape sees the whole server whichever worker answers.
When the master starts it deletes the files of processes that no longer run
(they would add old counts) but keeps live ones: the Celery worker started
beside it by `make run` writes its counters to the same directory. A dead
worker's files are marked as such.
"""

import os
from pathlib import Path

_var = Path(os.environ.get("QUESTDASH_VAR_DIR") or Path(__file__).resolve().parent / "var")
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_var / "prometheus"))

worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
keepalive = 0  # worker_connections follows threads: see on_starting

# gunicorn's own lines are JSON too, like the site's (resilience.logs).
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "resilience.logs.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        # A log config turns gunicorn's access log on; it stays off, as without one.
        "gunicorn.access": {"level": "WARNING", "handlers": ["console"], "propagate": False},
    },
}
# No control socket: its default path in $HOME is shared by every gunicorn of the
# user, so two servers on one host (the tests start several) would take each other's.
control_socket_disable = True


def on_starting(server):
    # Here rather than above, so that it follows --threads too.
    server.cfg.set("worker_connections", server.cfg.threads)
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    try:
        path.mkdir(parents=True, exist_ok=True)
        for file in path.glob("*.db"):  # counter_1234.db, histogram_1234.db ...
            pid = file.stem.rsplit("_", 1)[-1]
            if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
                file.unlink(missing_ok=True)
    except OSError as exc:
        # A read-only or full metrics disk costs the metrics, never the site: each
        # worker finds it too, drops its figures and says so (resilience/metricsdir.py).
        server.log.warning("metrics directory %s unusable: %s", path, exc)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    try:
        multiprocess.mark_process_dead(worker.pid)
    except OSError as exc:  # the metrics disk, read-only or gone: nothing to mark
        server.log.warning("metrics of worker %s not marked dead: %s", worker.pid, exc)
