"""Errors that always say what failed, and never leak a secret.

The story's logs said ``"error": ""``: ``str(e)`` of an exception without a
message. Everything here falls back to the type name, names the operation
("Failed to get_active_sessions: ..."), and scrubs passwords and DSNs.
"""

from __future__ import annotations

import enum
import errno
import functools
import math
import re
import socket
import sys
import time
from typing import Any

from .clock import iso_utc

MAX_ERROR_LENGTH = 500

# scheme://user:password@host -> scheme://***@host (greedy: a password may hold '@').
# Every repetition is bounded: unbounded ones made scrub() quadratic, and a
# 24 KB URL in a 404's log line cost 40 s of CPU (anyone could send one).
_URL_CREDENTIALS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]{0,31}://)[^/\s'\"<>]{1,256}@")
# password=..., QUESTDB_PASSWORD: ..., "api_key": "...", PGPASSWORD=... (quoted or not).
_SECRET_ASSIGNMENT = re.compile(
    r"""(?<![\w.\-])(?P<key>["']?[\w.\-]{0,64}(?:password|passwd|pwd|secret|token|api[_\-]?key)[\w.\-]{0,64}["']?)"""
    r"""(?P<sep>\s*[=:]\s*)"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^\s&;,'"]+)""",
    re.IGNORECASE,
)
_REDACTED = "***"


def scrub(text: str) -> str:
    """Remove passwords and DSN credentials from a message."""
    if not text:
        return text
    text = _URL_CREDENTIALS.sub(rf"\1{_REDACTED}@", text)
    return _SECRET_ASSIGNMENT.sub(rf"\g<key>\g<sep>{_REDACTED}", text)


def _message_of(exc: BaseException) -> str:
    try:
        return str(exc).strip()
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the real failure
        return ""


def describe(exc: BaseException, *, limit: int = MAX_ERROR_LENGTH, _depth: int = 0) -> str:
    """A message that is never empty: ``str(exc)``, else the type name (and its cause)."""
    text = _message_of(exc)
    if not text:
        text = type(exc).__name__
        cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if cause is not None and cause is not exc and _depth < 3:
            inner = describe(cause, limit=limit, _depth=_depth + 1)
            label = type(cause).__name__
            text += f" (caused by {inner})" if inner == label else f" (caused by {label}: {inner})"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


class Kind(enum.Enum):
    """What a failure says about the dependency: the breaker counts, retries and ignores by it."""

    UNREACHABLE = "unreachable"  # refused, reset, closed, no route: worth another try
    # Reached, but it refused our credentials: an outage for us (counted), and another
    # attempt with the same password fails the same way (never retried).
    REJECTED = "rejected"
    TIMEOUT = "timeout"  # reached but no answer in time: counted, never retried
    NOT_ATTEMPTED = "not_attempted"  # never reached (no budget, breaker open): neither
    ANSWERED = "answered"  # the dependency answered with an error: a query error, not an outage


# errno values that mean the peer could not be reached or the link broke.
_UNREACHABLE_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ENOTCONN",
                 "EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN", "ENETDOWN", "ESHUTDOWN")
    if hasattr(errno, name)
)  # fmt: skip
# SQLSTATEs the server sends when it is going away or cannot take us.
_UNREACHABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")
_TIMEOUT_SQLSTATES = ("57014",)  # query_canceled: statement_timeout fired
_REJECTED_SQLSTATES = ("28",)  # invalid_authorization_specification, invalid_password
# libpq reports a refused login before any SQLSTATE exists: QuestDB says "invalid
# username/password", PostgreSQL "password authentication failed for user ...".
_REJECTED_LOGIN = re.compile(
    r"invalid username/password|password authentication failed|authentication failed",
    re.IGNORECASE,
)
# Kinds that mean "the dependency is out of our reach": the breaker counts them.
COUNTED = frozenset({Kind.UNREACHABLE, Kind.TIMEOUT, Kind.REJECTED})


def classify(exc: BaseException) -> Kind | None:
    """How ``exc`` counts; None for an ordinary error of the caller's code.

    Narrow on purpose: an observer's ``FileNotFoundError``, a ``DiskFull`` or
    a ``QueryCanceled`` by hand are not connection errors, and counting them
    would open the breaker on a dependency that answers.
    """
    if isinstance(exc, GuardedCallError):
        return exc.kind
    if isinstance(exc, TimeoutError):  # socket.timeout, psycopg's ConnectionTimeout's base too
        return Kind.TIMEOUT
    if isinstance(exc, socket.gaierror | socket.herror | ConnectionError):
        return Kind.UNREACHABLE
    if (kind := _classify_client(exc)) is not None:
        return kind
    if isinstance(exc, OSError):
        return Kind.UNREACHABLE if exc.errno in _UNREACHABLE_ERRNOS else None
    return _classify_driver(exc)


# The client libraries Django projects call through, by the same rules as the database:
# refused, reset or cut off is UNREACHABLE (retried), no answer in time is TIMEOUT
# (counted, never retried), an answer with an error status is ANSWERED. First match
# wins, so a subclass comes before its base. A library is looked at only once this
# process has imported it (none is required; an error of one never imported cannot
# exist). Their errors are not the builtin ones: requests' are OSErrors without an
# errno, urllib3's TimeoutError and redis' ConnectionError are their own classes.
_CLIENT_ERRORS: dict[str, tuple[tuple[str, Kind], ...]] = {
    "requests": (
        ("exceptions.Timeout", Kind.TIMEOUT),  # ConnectTimeout and ReadTimeout
        ("exceptions.ConnectionError", Kind.UNREACHABLE),  # refused, reset, DNS, proxy
        ("exceptions.ChunkedEncodingError", Kind.UNREACHABLE),  # the answer was cut off
        ("exceptions.RetryError", Kind.ANSWERED),  # urllib3 gave up on 5xx answers
        ("exceptions.HTTPError", Kind.ANSWERED),  # raise_for_status()
    ),
    "httpx": (
        ("TimeoutException", Kind.TIMEOUT),  # connect, read, write and pool timeouts
        ("NetworkError", Kind.UNREACHABLE),  # connect, read, write and close errors
        ("RemoteProtocolError", Kind.UNREACHABLE),  # the server hung up mid-answer
        ("ProxyError", Kind.UNREACHABLE),
        ("HTTPStatusError", Kind.ANSWERED),  # raise_for_status()
    ),
    "urllib3": (
        ("exceptions.NewConnectionError", Kind.UNREACHABLE),  # a ConnectTimeoutError subclass
        ("exceptions.TimeoutError", Kind.TIMEOUT),  # ConnectTimeoutError and ReadTimeoutError
        ("exceptions.ProtocolError", Kind.UNREACHABLE),  # reset, or cut off mid-answer
        ("exceptions.ProxyError", Kind.UNREACHABLE),
        ("exceptions.ResponseError", Kind.ANSWERED),  # too many error answers
        ("exceptions.MaxRetryError", Kind.UNREACHABLE),  # unless its reason says otherwise
    ),
    "redis": (
        ("exceptions.AuthenticationError", Kind.REJECTED),  # a ConnectionError subclass
        ("exceptions.TimeoutError", Kind.TIMEOUT),
        ("exceptions.ConnectionError", Kind.UNREACHABLE),
        ("exceptions.ResponseError", Kind.ANSWERED),
    ),
    "psycopg_pool": (
        ("PoolTimeout", Kind.TIMEOUT),  # no connection within the pool's timeout
    ),
}
_client_rules: dict[str, tuple[tuple[type[BaseException], Kind], ...]] = {}


def _rules_of(library: str, module: Any) -> tuple[tuple[type[BaseException], Kind], ...]:
    rules = _client_rules.get(library)
    if rules is None:
        found = []
        for path, kind in _CLIENT_ERRORS[library]:
            try:
                found.append((functools.reduce(getattr, path.split("."), module), kind))
            except AttributeError:  # an older release without this class, or mid-import:
                continue  # looked up again next time
        rules = tuple(found)
        if len(rules) == len(_CLIENT_ERRORS[library]):
            _client_rules[library] = rules
    return rules


def _classify_client(exc: BaseException) -> Kind | None:
    """A client library's error, or None when it is none of theirs."""
    for library in _CLIENT_ERRORS:
        module = sys.modules.get(library)
        if module is None:
            continue
        for cls, kind in _rules_of(library, module):
            if isinstance(exc, cls):
                return _wrapped_kind(exc) or kind
    return None


def _wrapped_kind(exc: BaseException) -> Kind | None:
    """What the error a client wrapped says, when it says more than the wrapper.

    requests raises ``ConnectionError(MaxRetryError(reason=ReadTimeoutError))``
    when a read timed out on a retrying adapter: a timeout, not a refusal.
    """
    inner = getattr(exc, "reason", None)  # urllib3's MaxRetryError
    if not isinstance(inner, BaseException) and exc.args:
        inner = exc.args[0]  # requests keeps urllib3's error as its first argument
    if not isinstance(inner, BaseException) or inner is exc:
        return None
    kind = classify(inner)
    return kind if kind in (Kind.TIMEOUT, Kind.ANSWERED) else None


def _classify_driver(exc: BaseException) -> Kind | None:
    """psycopg's errors by SQLSTATE, seen through Django's wrappers."""
    from django.db import utils

    if isinstance(exc, utils.OperationalError | utils.InterfaceError):
        cause = exc.__cause__
        if cause is None:  # Django's own "connection already closed"
            return Kind.UNREACHABLE
        return classify(cause) or Kind.ANSWERED
    if isinstance(exc, utils.Error):
        return Kind.ANSWERED
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:  # never imported here: none of its errors can exist
        return None
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        return Kind.TIMEOUT
    if isinstance(exc, psycopg.InterfaceError):
        return Kind.UNREACHABLE
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate
        if (state or "").startswith(_REJECTED_SQLSTATES) or (
            state is None and _REJECTED_LOGIN.search(_message_of(exc))
        ):
            return Kind.REJECTED
        if state is None or state.startswith(_UNREACHABLE_SQLSTATES):
            return Kind.UNREACHABLE  # no SQLSTATE: the client lost the server
        return Kind.TIMEOUT if state.startswith(_TIMEOUT_SQLSTATES) else Kind.ANSWERED
    if isinstance(exc, psycopg.Error):
        return Kind.ANSWERED
    return None


def is_connection_error(exc: BaseException) -> bool:
    """The dependency could not be reached or did not answer in time: the breaker counts it.

    Query errors (ProgrammingError, DataError, DiskFull, ...) say the server
    answered: they are never connection errors.
    """
    return classify(exc) in COUNTED


def is_retryable(exc: BaseException) -> bool:
    """Worth another attempt in the same call: refused or reset, not timed out.

    Retrying a timeout makes the person waiting wait twice; the next request
    (or the next probe) tries again anyway. A refused login is refused again.
    """
    return classify(exc) is Kind.UNREACHABLE


def was_attempted(exc: BaseException) -> bool:
    """False when the call never reached the dependency: nothing to count."""
    return classify(exc) is not Kind.NOT_ATTEMPTED


class GuardedCallError(Exception):
    """Base class of every failure a guarded call raises: catch this one."""

    operation: str | None
    error: str
    error_type: str
    kind: Kind | None = None  # how the failure behind it counts (see ``classify``)

    @property
    def connection_error(self) -> bool:
        """The dependency could not be reached, or did not answer in time."""
        return self.kind in COUNTED

    def log_data(self) -> dict[str, Any]:
        """The ``data`` of the contract's failure log event."""
        return {"operation": self.operation, "error": self.error, "error_type": self.error_type}

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the fields across pickling (Celery results); drop the cause,
        # which may not pickle and whose text is already in ``error``.
        state = {k: v for k, v in self.__dict__.items() if k != "cause"}
        return (_rebuild, (type(self), self.args, state))


def _rebuild(cls: type[GuardedCallError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    exc.cause = None
    return exc


class OperationFailed(GuardedCallError):
    """``Failed to <operation>: <error>``, with the (scrubbed) error and its type."""

    def __init__(
        self,
        operation: str,
        cause: BaseException | None = None,
        *,
        error: str | None = None,
        error_type: str | None = None,
        breaker: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.operation = operation
        self.cause = cause
        self.breaker = breaker
        self.attempts = attempts
        if error is None:
            error = describe(cause) if cause is not None else "unknown error"
        self.error = scrub(error) or "unknown error"
        if error_type is None:
            error_type = type(cause).__name__ if cause is not None else type(self).__name__
        self.error_type = error_type
        self.kind = None if cause is None else classify(cause)
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"Failed to {self.operation}: {self.error}"


class CircuitOpenError(GuardedCallError):
    """The breaker refused the call without trying it ("not permitted", not a call failure).

    Raised on the hot open path, so it keeps its fields in ``args`` (the
    breaker builds it with ``Exception.__new__``, skipping ``__init__``) and
    formats its message only when someone reads it.
    """

    kind = Kind.NOT_ATTEMPTED
    error_type = "CircuitOpenError"
    operation: str | None = None  # set by the guard that was refused
    cause = None
    attempts = 0

    def __init__(
        self,
        breaker_name: str,
        next_probe_at: float | None = None,
        *,
        now: float | None = None,
        reason: str = "open",
        operation: str | None = None,
        opened_by: str | None = None,
        opened_by_type: str | None = None,
    ) -> None:
        Exception.__init__(
            self, breaker_name, next_probe_at, now, reason, opened_by, opened_by_type
        )
        if operation is not None:
            self.operation = operation

    @property
    def breaker_name(self) -> str:
        return self.args[0]

    @property
    def breaker(self) -> str:
        return self.args[0]

    @property
    def next_probe_at(self) -> float | None:
        """Wall time (epoch seconds) when a probe is due; None when forced open."""
        return self.args[1] if len(self.args) > 1 else None

    @property
    def now(self) -> float | None:
        return self.args[2] if len(self.args) > 2 else None

    @property
    def reason(self) -> str:
        """ "open", "half_open" (this window's probes are taken) or "forced_open"."""
        return self.args[3] if len(self.args) > 3 else "open"

    @property
    def opened_by(self) -> TrippedBy | None:
        """The failure that opened the breaker (scrubbed; perhaps seen by another process)."""
        error = self.args[4] if len(self.args) > 4 else None
        if not error:
            return None
        kind = self.args[5] if len(self.args) > 5 else None
        return TrippedBy(error, kind or "Exception")

    @property
    def retry_after(self) -> int | None:
        """Whole seconds until the next probe is due (for a Retry-After header); None if forced."""
        if self.next_probe_at is None:
            return None
        now = self.now if self.now is not None else time.time()
        return max(1, math.ceil(self.next_probe_at - now))

    @property
    def error(self) -> str:
        name = self.breaker_name
        if self.reason == "forced_open":
            return f"circuit breaker {name!r} is forced open; calls resume when it is reset"
        when = iso_utc(self.next_probe_at) or "unknown"
        state = "half-open and its probes are taken" if self.reason == "half_open" else "open"
        due = f"next probe due at {when}"
        if self.retry_after is not None:
            due += f" (in {self.retry_after} s)"
        return f"circuit breaker {name!r} is {state}; {due}"

    def __str__(self) -> str:
        if self.operation is None:
            text = self.error
            return text[0].upper() + text[1:]
        return f"Failed to {self.operation}: {self.error}"


class TrippedBy(Exception):
    """A failure that opened a breaker, as the shared history keeps it: its words and type name.

    The exception itself may have been raised in another process; this
    stands in for it wherever an exception is worded (``describe``).
    """

    def __init__(self, error: str, error_type: str) -> None:
        super().__init__(error)
        self.error_type = error_type


class DeadlineExceeded(OperationFailed):
    """The call's time budget ran out (waits, connect and query timeouts included)."""

    def __init__(
        self,
        operation: str,
        budget: float,
        *,
        attempts: int = 0,
        cause: BaseException | None = None,
        breaker: str | None = None,
    ) -> None:
        self.budget = budget
        tried = f"after {attempts} attempt{'s' * (attempts != 1)}" if attempts else "before trying"
        error = f"deadline of {budget:g} s exceeded {tried}"
        if cause is not None:
            error += f" (last error: {type(cause).__name__}: {describe(cause)})"
        super().__init__(
            operation,
            cause,
            error=error,
            error_type="DeadlineExceeded",
            breaker=breaker,
            attempts=attempts,
        )
        if not attempts:
            self.kind = Kind.NOT_ATTEMPTED
        elif cause is not None and classify(cause) is Kind.UNREACHABLE:
            self.kind = Kind.UNREACHABLE  # refused until the budget ran out: not a slow server
        else:
            self.kind = Kind.TIMEOUT


def is_unreachable(exc: BaseException) -> bool:
    """The dependency could not be reached, or was not tried (breaker open, no budget): an outage.

    Anything else, a bad query above all, is the caller's bug and stays one.
    """
    kind = classify(exc)
    return kind is Kind.NOT_ATTEMPTED or kind in COUNTED
