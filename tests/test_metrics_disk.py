"""Issue 17 item 3: metrics can never hurt a request.

prometheus_client's multiprocess mode writes each process's figures into
files it maps into memory. On a full disk a write into a sparse page is a
SIGBUS, not an exception: every worker dies on its first request, and every
restarted one after it. Here the metrics directory is a real filesystem of
its own (a small tmpfs, mounted as root, as CI runs), full or read-only, or
filled while the site runs: the site serves, each process says once in its
log that it drops its metrics and why, and /ht/ says so as a warning.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.fleet import API, DASHBOARD, HEALTH, Fleet, request

pytestmark = [pytest.mark.usefixtures("questdb_server"), pytest.mark.timeout(180)]

TOKEN = "health-token-for-the-disk-tests-01"
WORKERS = 2


@contextlib.contextmanager
def tmpfs(path: Path, *, size: str = "512k", read_only: bool = False) -> Iterator[Path]:
    """A filesystem of its own at ``path`` (needs root: CI runs as root)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, f"mount needs root (CI runs as root): {done.stderr}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(path: Path) -> None:
    """Every block taken: the next allocation fails with ENOSPC."""
    with contextlib.suppress(OSError), (path / "ballast").open("ab") as ballast:
        while True:
            ballast.write(b"\0" * 4096)
            ballast.flush()
            os.fsync(ballast.fileno())


def site(workdir: Path, metrics_dir: Path, settings) -> Fleet:
    return Fleet(workdir, int(settings.QUESTDB_PORT), "", workers=WORKERS,
                 extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                            "HEALTH_TOKEN": TOKEN})  # fmt: skip


def serves(fleet: Fleet, cookie: str, but: int | None = None) -> None:
    """Every worker (``but`` the one killed) answers the API fresh and the page whole."""
    pids: set[int | None] = set()
    for _ in range(60):
        api = request(fleet.base_url, API.format("positions"), timeout=10, cookie=cookie)
        assert api.status == 200 and api.json()["status"] == "ok", api.body[:300]
        page = request(fleet.base_url, DASHBOARD, timeout=10, cookie=cookie)
        assert page.status == 200 and b"status-error" not in page.body
        pids |= {api.pid, page.pid}
        if len(pids - {but}) >= WORKERS:
            return
    raise AssertionError(f"only workers {pids} answered")


def metrics_check(fleet: Fleet) -> str:
    """What /ht/'s metrics check says to a token holder, asked until it says something."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", fleet.port, timeout=10)
    connection.request("GET", HEALTH, headers={"Authorization": f"Bearer {TOKEN}"})
    body = json.loads(connection.getresponse().read())
    connection.close()
    return next(said for check, said in body.items() if check.startswith("MetricsDirectory"))


def no_worker_died(fleet: Fleet) -> None:
    log = fleet.log.read_text()
    assert "SIGBUS" not in log and "exited with code" not in log, log[-2000:]


def dropped_lines(fleet: Fleet) -> list[dict]:
    lines = [json.loads(line) for line in fleet.log.read_text().splitlines()]
    return [line for line in lines if line.get("event_type") == "resilience.metrics.dropped"]


def test_a_full_metrics_disk_drops_the_metrics_not_the_workers(tmp_path, settings):
    with tmpfs(tmp_path / "metrics") as metrics:
        fill(metrics)
        fleet = site(tmp_path / "site", metrics, settings)
        fleet.start()
        try:
            cookie = fleet.login()
            serves(fleet, cookie)
            assert "Warning" in metrics_check(fleet) and "free" in metrics_check(fleet)
            killed = request(fleet.base_url, "/ht/live/", timeout=5).pid
            os.kill(killed, signal.SIGKILL)
            time.sleep(2)  # gunicorn starts another worker, on the same full disk
            serves(fleet, cookie, but=killed)
        finally:
            fleet.stop()
        no_worker_died(fleet)
        dropped = dropped_lines(fleet)
        assert dropped, "no process said it dropped its metrics"
        per_process = [line["data"]["pid"] for line in dropped]
        assert len(per_process) == len(set(per_process)), "a process said it more than once"
        assert all(line["data"]["error"] for line in dropped)


def test_a_disk_that_fills_while_the_site_runs(tmp_path, settings):
    with tmpfs(tmp_path / "metrics", size="2m") as metrics:
        fleet = site(tmp_path / "site", metrics, settings)
        fleet.start()
        try:
            cookie = fleet.login()
            serves(fleet, cookie)
            assert metrics_check(fleet) == "OK"
            fill(metrics)
            serves(fleet, cookie)
            assert "Warning" in metrics_check(fleet)
            killed = request(fleet.base_url, "/ht/live/", timeout=5).pid
            os.kill(killed, signal.SIGKILL)
            time.sleep(2)
            serves(fleet, cookie, but=killed)
        finally:
            fleet.stop()
        no_worker_died(fleet)


def test_a_read_only_metrics_directory(tmp_path, settings):
    with tmpfs(tmp_path / "metrics", read_only=True) as metrics:
        fleet = site(tmp_path / "site", metrics, settings)
        fleet.start()
        try:
            serves(fleet, fleet.login())
            said = metrics_check(fleet)
            assert "Warning" in said and "read-only" in said, said
        finally:
            fleet.stop()
        no_worker_died(fleet)
        assert dropped_lines(fleet)


def test_a_missing_metrics_directory(tmp_path, settings):
    fleet = site(tmp_path / "site", tmp_path / "nowhere" / "metrics", settings)
    (tmp_path / "nowhere").mkdir()
    (tmp_path / "nowhere").chmod(0o500)  # gunicorn cannot make it (root can: remove it late)
    fleet.start()
    try:
        subprocess.run(["rm", "-rf", str(tmp_path / "nowhere" / "metrics")], check=True)
        serves(fleet, fleet.login())
        said = metrics_check(fleet)
        assert "Warning" in said and "does not exist" in said, said
    finally:
        fleet.stop()
    no_worker_died(fleet)
