"""Real services for the whole test suite: QuestDB and Redis, started once.

The helpers live in the ``testkit`` package (the benchmarks use them too);
here are the session fixtures. QuestDB is started with the product's own
`manage.py questdb` commands. Redis is Debian's redis-server on a free
port. Nothing here skips: a test that needs a service fails when the
service cannot start.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit import fixtures

redis_server = fixtures.redis_server  # the session's Redis and Toxiproxy, shared by both suites
redis_url = fixtures.redis_url
toxiproxy = fixtures.toxiproxy


@pytest.fixture(scope="session")
def questdb_server(django_db_blocker) -> Iterator[None]:
    """The real QuestDB on the test ports, started and seeded by the product's commands."""
    from testkit.questdb import start_questdb, stop_questdb

    with django_db_blocker.unblock():
        start_questdb()
    yield
    stop_questdb()


@pytest.fixture(scope="session", autouse=True)
def no_password_in_any_log_line() -> Iterator[None]:
    """Every log record of the run, tracebacks included, rendered as the product renders
    it, is searched for the QuestDB password (a distinctive one in tests/settings.py)."""
    import logging

    from django.conf import settings

    from resilience.logs import JsonFormatter

    password = getattr(settings, "QUESTDB_PASSWORD", None)  # the app's own settings have none
    leaks: list[str] = []

    class Canary(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = self.format(record)
            if password and password in text:
                leaks.append(text)

    canary = Canary(level=logging.DEBUG)
    canary.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in ("resilience", "questdash")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)  # tracebacks too
    logging.getLogger().addHandler(canary)
    yield
    logging.getLogger().removeHandler(canary)
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)
    assert not leaks, leaks[:3]
