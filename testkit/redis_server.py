"""A real redis-server (Debian's) on a free port, that tests stop, restart and pause."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .processes import pause_process, resume_process


@dataclass
class RedisServer:
    """A real redis-server that tests may stop and start again on the same port."""

    port: int
    workdir: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: apt-get install redis-server")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)  # a paused server cannot exit
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    @property
    def pid(self) -> int:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} is not running")
        return self.process.pid

    def pause(self) -> None:
        """SIGSTOP this very redis-server (its pid, nothing else): it accepts connections
        (the kernel does) but answers nothing, as a hung server does."""
        pause_process(self.pid)

    def resume(self) -> None:
        resume_process(self.pid)

    @contextlib.contextmanager
    def paused(self) -> Iterator[float]:
        """Paused for the block (resumed whatever happens in it); yields when it began."""
        self.pause()
        try:
            yield time.monotonic()
        finally:
            self.resume()

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def fresh_database(self, db: int) -> str:
        """The URL of database ``db`` of this server, emptied (FLUSHDB) for a new test's use."""
        import redis

        url = self.url.rsplit("/", 1)[0] + f"/{db}"
        redis.Redis.from_url(url).flushdb()
        return url
