"""Errors that are never empty and never leak a secret; JSON log lines in the contract's shape."""

from __future__ import annotations

import errno
import io
import json
import logging
import pickle
import socket

import psycopg
import pytest
from django.db.utils import DataError, IntegrityError, InterfaceError, ProgrammingError
from django.db.utils import OperationalError as DjangoOperationalError

from resilience.errors import (
    CircuitOpenError,
    DeadlineExceeded,
    GuardedCallError,
    Kind,
    OperationFailed,
    classify,
    describe,
    is_connection_error,
    is_retryable,
    scrub,
    was_attempted,
)
from resilience.logs import JsonFormatter, log_event, log_failure


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("postgresql://admin:quest@127.0.0.1:8812/qdb", "quest@"),
        ("redis://:s3cr3t@cache:6379/0 refused", "s3cr3t"),
        ("host=db port=8812 user=admin password=quest dbname=qdb", "quest "),
        ("password='two words' sslmode=disable", "two words"),
        ('{"password": "hunter2", "user": "admin"}', "hunter2"),
        ("PGPASSWORD=hunter2 psql", "hunter2"),
        ("QUESTDB_PASSWORD: hunter2", "hunter2"),
        ("https://user:p@ss@example.com/x?api_key=abc123&x=1", "abc123"),
    ],
)
def test_scrub_removes_passwords_and_dsn_credentials(text, leak):
    cleaned = scrub(text)
    assert leak not in cleaned
    assert "***" in cleaned


def test_scrub_keeps_what_helps_diagnosis():
    message = 'connection to server at "127.0.0.1", port 8812 failed: Connection refused'
    assert scrub(message) == message
    assert scrub("postgresql://admin:quest@db:8812/qdb") == "postgresql://***@db:8812/qdb"
    assert scrub('password authentication failed for user "admin"') == (
        'password authentication failed for user "admin"'
    )


def test_describe_is_never_empty():
    assert describe(ConnectionRefusedError("[Errno 111] Connection refused")) == (
        "[Errno 111] Connection refused"
    )
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(ValueError("   ")) == "ValueError"
    try:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError as inner:
            raise psycopg.OperationalError() from inner
    except psycopg.OperationalError as outer:
        assert describe(outer) == "OperationalError (caused by ConnectionResetError: peer reset)"

    class Broken(Exception):
        def __str__(self):
            raise RuntimeError("no")

    assert describe(Broken()) == "Broken"
    assert len(describe(ValueError("x" * 5000))) == 500


def django_wrapped(exc: Exception, wrapper: type[Exception]) -> Exception:
    """What Django's DatabaseErrorWrapper raises: its own class, the driver's error as cause."""
    outer = wrapper(str(exc))
    outer.__cause__ = exc
    return outer


UNREACHABLE, TIMEOUT, NOT_ATTEMPTED, ANSWERED, REJECTED = (
    Kind.UNREACHABLE, Kind.TIMEOUT, Kind.NOT_ATTEMPTED, Kind.ANSWERED, Kind.REJECTED
)  # fmt: skip
COUNTED = (UNREACHABLE, TIMEOUT, REJECTED)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionRefusedError(111, "refused"), UNREACHABLE),
        (ConnectionResetError(), UNREACHABLE),
        (BrokenPipeError(), UNREACHABLE),
        (OSError(errno.EHOSTUNREACH, "No route to host"), UNREACHABLE),
        (socket.gaierror(-2, "Name or service not known"), UNREACHABLE),
        (psycopg.OperationalError("connection failed"), UNREACHABLE),  # no SQLSTATE: client side
        (psycopg.errors.AdminShutdown("terminating connection"), UNREACHABLE),
        (psycopg.errors.TooManyConnections("too many"), UNREACHABLE),
        (psycopg.InterfaceError("connection already closed"), UNREACHABLE),
        (django_wrapped(psycopg.OperationalError("closed"), DjangoOperationalError), UNREACHABLE),
        (DjangoOperationalError("server closed the connection"), UNREACHABLE),
        (InterfaceError("connection already closed"), UNREACHABLE),
        (TimeoutError(), TIMEOUT),
        (socket.timeout(), TIMEOUT),  # noqa: UP041 - the alias older code raises and catches
        (psycopg.errors.ConnectionTimeout("connection timeout expired"), TIMEOUT),
        (psycopg.errors.QueryCanceled("statement timeout"), TIMEOUT),
        (django_wrapped(psycopg.errors.QueryCanceled("timeout"), DjangoOperationalError), TIMEOUT),
        (DeadlineExceeded("load", 1.0, attempts=1), TIMEOUT),
        (DeadlineExceeded("load", 1.0), NOT_ATTEMPTED),  # no budget left before trying
        (CircuitOpenError("questdb", 1.0), NOT_ATTEMPTED),
        # A refused login: QuestDB's and PostgreSQL's words (libpq gives no SQLSTATE), or one.
        (psycopg.OperationalError("failed: ERROR:  invalid username/password"), REJECTED),
        (psycopg.OperationalError('FATAL:  password authentication failed for user "a"'), REJECTED),
        (psycopg.errors.InvalidPassword("password authentication failed"), REJECTED),
        (
            django_wrapped(
                psycopg.errors.InvalidAuthorizationSpecification("no"), DjangoOperationalError
            ),
            REJECTED,
        ),
        (psycopg.errors.DiskFull("could not extend file"), ANSWERED),
        (django_wrapped(psycopg.errors.DiskFull("full"), DjangoOperationalError), ANSWERED),
        (ProgrammingError("syntax error"), ANSWERED),
        (DataError("invalid input"), ANSWERED),
        (IntegrityError("duplicate key"), ANSWERED),
        (psycopg.ProgrammingError("syntax"), ANSWERED),
        (psycopg.errors.UndefinedTable("no such table"), ANSWERED),
        (FileNotFoundError(2, "No such file or directory"), None),  # a metrics dir gone: not us
        (PermissionError(13, "Permission denied"), None),
        (OSError("something local"), None),
        (ValueError("bad"), None),
        (KeyError("x"), None),
    ],
)
def test_each_error_counts_retries_and_is_ignored_by_its_kind(exc, kind):
    assert classify(exc) is kind
    assert is_connection_error(exc) == (kind in COUNTED)
    assert is_retryable(exc) == (kind is UNREACHABLE)
    assert was_attempted(exc) == (kind is not NOT_ATTEMPTED)
    wrapped = OperationFailed("load", exc)
    assert classify(wrapped) is kind
    assert wrapped.connection_error == (kind in COUNTED)


def test_operation_failed_says_what_failed():
    error = OperationFailed("get_active_sessions", ConnectionRefusedError("Connect call failed"))
    assert str(error) == "Failed to get_active_sessions: Connect call failed"
    assert (error.operation, error.error, error.error_type) == (
        "get_active_sessions",
        "Connect call failed",
        "ConnectionRefusedError",
    )
    assert error.connection_error
    assert OperationFailed("x", TimeoutError()).error == "TimeoutError"
    assert "quest" not in str(OperationFailed("x", OSError("postgresql://a:quest@h/d")))


def test_circuit_open_error_says_which_breaker_and_when():
    error = CircuitOpenError("questdb", 1_700_000_030.0, now=1_700_000_000.0)
    assert str(error) == (
        "Circuit breaker 'questdb' is open; next probe due at 2023-11-14T22:13:50.000Z (in 30 s)"
    )
    assert error.retry_after == 30
    assert isinstance(error, GuardedCallError) and not isinstance(error, OperationFailed)
    error.operation = "get_positions"
    assert str(error).startswith("Failed to get_positions: circuit breaker 'questdb' is open")
    assert error.log_data() == {
        "operation": "get_positions",
        "error": error.error,
        "error_type": "CircuitOpenError",
    }
    forced = CircuitOpenError("questdb", None, reason="forced_open")
    assert forced.retry_after is None and "forced open" in str(forced)


def test_errors_survive_pickling_with_their_fields():
    for error in (
        OperationFailed("load", ConnectionRefusedError("refused"), breaker="questdb", attempts=3),
        CircuitOpenError("questdb", 1_700_000_030.0, now=1_700_000_000.0, operation="load"),
        DeadlineExceeded("load", 2.0, attempts=2, cause=TimeoutError()),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert copy.error_type == error.error_type


def json_lines(logger_name, level=logging.DEBUG):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger, stream, handler


def test_json_formatter_renders_events_and_foreign_records():
    logger, stream, handler = json_lines("resilience.test.formatter")
    try:
        log_event(logger, logging.WARNING, "questdb.query_failed", operation="x", error="boom")
        logger.info("plain message with password=hunter2")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event_type"] == "questdb.query_failed"
    assert first["data"] == {"operation": "x", "error": "boom"}
    assert first["level"] == "WARNING" and first["logger"] == "resilience.test.formatter"
    assert first["timestamp"].endswith("+00:00")
    assert second["event_type"] == "resilience.test.formatter"
    assert second["data"] == {"message": "plain message with password=***"}


def test_failure_traceback_goes_to_a_separate_debug_record():
    logger, stream, handler = json_lines("resilience.test.failure")
    try:
        try:
            raise ConnectionRefusedError("Connect call failed ('127.0.0.1', 8812)")
        except ConnectionRefusedError as exc:
            log_failure(logger, "questdb.get_active_sessions_failed", exc, operation="get")
    finally:
        logger.removeHandler(handler)
    failure, trace = (json.loads(line) for line in stream.getvalue().splitlines())
    assert failure["level"] == "ERROR" and "traceback" not in failure["data"]
    assert failure["data"] == {
        "operation": "get",
        "error": "Connect call failed ('127.0.0.1', 8812)",
        "error_type": "ConnectionRefusedError",
    }
    assert trace["event_type"] == "questdb.get_active_sessions_failed_traceback"
    assert trace["level"] == "DEBUG"
    assert "Traceback (most recent call last)" in trace["data"]["traceback"]


def test_no_traceback_record_above_debug():
    logger, stream, handler = json_lines("resilience.test.info", level=logging.INFO)
    try:
        log_failure(logger, "x_failed", TimeoutError(), operation="x")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["data"]["error"] == "TimeoutError"


def test_log_event_scrubs_nested_values():
    logger, stream, handler = json_lines("resilience.test.scrub")
    try:
        log_event(
            logger,
            logging.ERROR,
            "e",
            error="dsn postgresql://u:pw1@h/d",
            nested={"a": ["password=pw2"]},
        )
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue()
    assert "pw1" not in line and "pw2" not in line


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "text",
    [
        "/" + "a" * 200_000,  # a long path in a 404's log line
        "x" * 200_000 + "://",
        "password" * 25_000,
        "https://" + "u" * 200_000 + "@host",
    ],
)
def test_scrub_stays_linear_on_long_hostile_text(text):
    """Anyone can put 200 KB in a URL; scrubbing it once cost minutes when it was quadratic."""
    assert scrub(text)
