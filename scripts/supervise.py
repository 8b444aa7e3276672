"""Run the Procfile's processes together; Ctrl-C stops them all, cleanly.

Like honcho, but on Ctrl-C each process's own main process gets SIGTERM
(Celery's warm shutdown then stops its pool children itself) and up to
STOP_TIMEOUT seconds to exit, before anything is killed: Celery on the
filesystem broker needs about 8 s, more than honcho's fixed 5.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

STOP_TIMEOUT = 20.0
COLORS = ["\033[36m", "\033[33m", "\033[35m", "\033[32m"]
RESET = "\033[0m"


def read_procfile(path: Path) -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = command.strip()
    return entries


def relay(name: str, color: str, stream, width: int) -> None:
    for raw in iter(stream.readline, b""):
        text = raw.decode(errors="replace").rstrip("\n")
        sys.stdout.write(f"{color}{time.strftime('%H:%M:%S')} {name:<{width}} |{RESET} {text}\n")
        sys.stdout.flush()


def main() -> int:
    procfile = Path(sys.argv[1] if len(sys.argv) > 1 else "Procfile")
    entries = read_procfile(procfile)
    width = max(map(len, entries))
    processes: dict[str, subprocess.Popen] = {}
    for i, (name, command) in enumerate(entries.items()):
        process = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {command}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we decide who stops how
        )
        processes[name] = process
        color = COLORS[i % len(COLORS)]
        threading.Thread(
            target=relay, args=(name, color, process.stdout, width), daemon=True
        ).start()
        print(f"{time.strftime('%H:%M:%S')} {name:<{width}} | started (pid {process.pid})")

    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    while not stopping.is_set():
        if any(p.poll() is not None for p in processes.values()):
            break  # one died: stop the rest
        stopping.wait(0.5)

    print(f"{time.strftime('%H:%M:%S')} stopping: SIGTERM, up to {STOP_TIMEOUT:.0f} s each")
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, process in processes.items():
        try:
            code = process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            code = process.wait()
            print(f"{name} did not stop in {STOP_TIMEOUT:.0f} s: killed")
        print(f"{time.strftime('%H:%M:%S')} {name:<{width}} | exited with {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
