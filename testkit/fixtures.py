"""Session fixtures that both suites use; a conftest imports them by name to have them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .ports import free_port
from .redis_server import RedisServer
from .toxiproxy import Toxiproxy


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free port for the session; tests may stop, pause, restart it."""
    server = RedisServer(port=free_port(), workdir=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def toxiproxy() -> Iterator[Toxiproxy]:
    """A real Toxiproxy, once per session, for the network faults of any suite."""
    server = Toxiproxy(port=free_port())
    server.start()
    yield server
    server.stop()
