"""Pausing and ending the processes a test runs: the real faults of a hung or dead server."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def pause_process(pid: int, timeout: float = 5.0) -> None:
    """SIGSTOP ``pid`` and return once every one of its threads is stopped: on a busy
    machine the stop may land after the next request was sent, and a test of a hung
    server must not be answered by it."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while not all(_stopped(task) for task in Path(f"/proc/{pid}/task").iterdir()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} did not stop within {timeout} s")
        time.sleep(0.005)


def _stopped(task: Path) -> bool:
    """The thread is stopped (state T), or gone."""
    try:
        stat = (task / "stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


def resume_process(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)


def terminate(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL to its whole process group if it is not gone in ``timeout`` s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
