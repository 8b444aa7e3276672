"""Real TCP servers that fail in one way each, in a process of their own.

    with tcp_server("hang") as port: ...   # accepts, reads, never answers
    with tcp_server("reset") as port: ...  # accepts, then resets the connection (RST)
    port = refused_port()                  # nothing listens: connections are refused

A server runs in a subprocess so that its sockets never show in this
process's ``/proc/self/fd`` (the descriptor-count tests count ours alone).
Run as a module it serves until killed: ``python -m testkit.tcp_servers hang``
prints its port, then serves.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from testkit.ports import free_port

MODES = ("hang", "reset")
RST_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s


def refused_port() -> int:
    """A local port nobody listens on (bound and released: the kernel refuses it)."""
    return free_port()


@contextlib.contextmanager
def tcp_server(mode: str) -> Iterator[int]:
    """A server of ``mode`` on a free port, for the block; yields the port."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    process = subprocess.Popen(
        [sys.executable, "-m", "testkit.tcp_servers", mode],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.strip().isdigit():
            raise RuntimeError(f"the {mode} server did not start: {line!r}")
        yield int(line)
    finally:
        process.kill()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


def serve(mode: str) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    listener.setblocking(False)
    print(listener.getsockname()[1], flush=True)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            if sock is listener:
                with contextlib.suppress(BlockingIOError, ConnectionAbortedError):
                    conn, _ = listener.accept()
                    if mode == "reset":
                        # Linger 0: close() sends RST, not FIN (the client sees ECONNRESET).
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_ON_CLOSE)
                        conn.close()
                    else:
                        conn.setblocking(False)
                        selector.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(65536)  # read what the client sends, answer nothing
            except OSError:
                data = b""
            if not data:  # the client gave up: let its connection go
                selector.unregister(sock)
                sock.close()


if __name__ == "__main__":
    serve(sys.argv[1])
