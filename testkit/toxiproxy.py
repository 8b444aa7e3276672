"""A real Toxiproxy server for network faults, driven over its HTTP API with urllib.

`scripts/test.sh` builds the server (`go install
github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0`) into var/bin; the
`TOXIPROXY_SERVER` environment variable may point elsewhere. A missing
binary is an error, never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BINARY = ROOT / "var" / "bin" / "toxiproxy-server"


def binary() -> Path:
    path = Path(os.environ.get("TOXIPROXY_SERVER") or DEFAULT_BINARY)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise RuntimeError(
            f"Toxiproxy server not found at {path}: run scripts/test.sh, or "
            "GOBIN=$PWD/var/bin go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0"
            " && mv var/bin/server var/bin/toxiproxy-server"
        )
    return path


@dataclass
class Toxiproxy:
    """The server: start, stop, and its API."""

    port: int
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(binary()), "-host", "127.0.0.1", "-port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.api("GET", "/version")
                return
            except OSError:
                time.sleep(0.05)
        self.stop()  # never leave a server behind a failed start
        raise RuntimeError(f"toxiproxy-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def api(self, method: str, path: str, body: dict | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
        try:
            return json.loads(text) if text.strip() else None
        except ValueError:
            return text  # GET /version answers plain text

    def proxy(self, name: str, listen_port: int, upstream: str) -> Proxy:
        """A fresh proxy (an old one of the same name is replaced)."""
        try:
            self.api("DELETE", f"/proxies/{name}")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
        self.api(
            "POST",
            "/proxies",
            {"name": name, "listen": f"127.0.0.1:{listen_port}", "upstream": upstream,
             "enabled": True},
        )  # fmt: skip
        return Proxy(self, name, listen_port)


@dataclass
class Proxy:
    server: Toxiproxy
    name: str
    port: int

    def add_toxic(self, kind: str, stream: str = "downstream", **attributes: int) -> None:
        """One toxic on every connection, live ones included (named ``<kind>_<stream>``)."""
        self.server.api(
            "POST",
            f"/proxies/{self.name}/toxics",
            {"name": f"{kind}_{stream}", "type": kind, "stream": stream, "toxicity": 1.0,
             "attributes": attributes},
        )  # fmt: skip

    def blackhole(self) -> None:
        """Accept connections, pass nothing, answer nothing (a `timeout` toxic of 0).

        Live connections go silent mid-stream; new ones are accepted and never
        get past the PostgreSQL handshake. Healing closes the silenced ones.
        """
        for stream in ("upstream", "downstream"):
            self.add_toxic("timeout", stream, timeout=0)

    def latency(self, milliseconds: int, stream: str = "downstream") -> None:
        """Every packet from QuestDB (downstream) arrives ``milliseconds`` late."""
        self.add_toxic("latency", stream, latency=milliseconds, jitter=0)

    def reset_peer(self) -> None:
        """Every connection is reset (TCP RST) as soon as data flows."""
        self.add_toxic("reset_peer", "upstream", timeout=0)

    def heal(self) -> None:
        """No toxics, enabled: traffic flows again."""
        for toxic in self.server.api("GET", f"/proxies/{self.name}/toxics") or []:
            self.server.api("DELETE", f"/proxies/{self.name}/toxics/{toxic['name']}")
        self.set_enabled(True)

    def set_enabled(self, enabled: bool) -> None:
        """Disabled: the listener is closed and connections are refused."""
        self.server.api("POST", f"/proxies/{self.name}", {"enabled": enabled})

    def delete(self) -> None:
        self.server.api("DELETE", f"/proxies/{self.name}")
