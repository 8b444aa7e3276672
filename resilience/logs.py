"""JSON log events in the contract's shape: ``{"event_type": ..., "data": {...}}``.

``log_event`` puts the event on the record (``record.event_type``,
``record.data``) and also makes the message itself that JSON object, so the
line keeps its shape under any formatter. ``JsonFormatter`` renders every
record, ours or not, as one JSON line. Strings are scrubbed of passwords and
DSNs on the way out; tracebacks go out only on separate DEBUG records.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .errors import GuardedCallError, describe, scrub


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, default=str, ensure_ascii=False)


def log_event(
    logger: logging.Logger,
    level: int,
    event_type: str,
    /,
    *,
    exc_info: BaseException | None = None,
    **data: Any,
) -> None:
    """Emit one event; free when the level is disabled."""
    if not logger.isEnabledFor(level):
        return
    clean = _clean(data)
    logger.log(
        level,
        _dumps({"event_type": event_type, "data": clean}),
        exc_info=exc_info,
        extra={"event_type": event_type, "data": clean},
        stacklevel=2,
    )


def failure_data(exc: BaseException, operation: str | None) -> dict[str, Any]:
    """The contract's failure fields: operation, error (never empty), error_type."""
    if isinstance(exc, GuardedCallError):
        data = exc.log_data()
        if operation is not None:
            data["operation"] = operation
        return data
    return {"operation": operation, "error": describe(exc), "error_type": type(exc).__name__}


def log_failure(
    logger: logging.Logger,
    event_type: str,
    exc: BaseException,
    *,
    operation: str | None,
    level: int = logging.ERROR,
    traceback: bool = True,
    summary: Summary | None = None,
    more: Callable[[], dict[str, Any]] | None = None,
    **extra: Any,
) -> None:
    """A failure event, plus its traceback on a separate DEBUG record (``<event>_traceback``).

    With a ``summary``, repeats of the same event and error type within its
    interval go to DEBUG only (see ``Summary``), and their data is not even
    built unless DEBUG is on: in an outage that is every request. ``more()``
    gives fields that are worth computing only for a line that is written.
    """

    def data() -> dict[str, Any]:
        return {**failure_data(exc, operation), **extra, **(more() if more else {})}

    if summary is None:
        log_event(logger, level, event_type, **data())
    else:
        error_type = exc.error_type if isinstance(exc, GuardedCallError) else type(exc).__name__
        summary.record((event_type, error_type), level, event_type, data)
    cause = getattr(exc, "cause", None) or exc
    if traceback and logger.isEnabledFor(logging.DEBUG):
        log_event(
            logger,
            logging.DEBUG,
            f"{event_type}_traceback",
            exc_info=cause,
            operation=operation,
            error_type=type(cause).__name__,
        )


class JsonFormatter(logging.Formatter):
    """Every record as one JSON line: event_type, data, timestamp, level, logger."""

    def format(self, record: logging.LogRecord) -> str:
        event_type = getattr(record, "event_type", None)
        data = getattr(record, "data", None)
        if event_type is None or not isinstance(data, dict):
            event_type = record.name
            data = {"message": scrub(record.getMessage())}
        else:
            data = dict(data)
        if record.exc_info:
            data["traceback"] = scrub(self.formatException(record.exc_info))
        elif record.stack_info:
            data["stack"] = scrub(self.formatStack(record.stack_info))
        payload = {
            "event_type": event_type,
            "data": data,
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
        }
        return _dumps(payload)


_summaries: weakref.WeakSet[Summary] = weakref.WeakSet()


def reset_summaries() -> None:
    for summary in list(_summaries):
        summary.reset()


class Summary:
    """Repeated events as one line per interval: the first at once, then how many followed.

    An outage makes every request fail the same way; a line per request says
    nothing the first did not, and 30,000 lines a minute bury what does. So
    the first of a kind is logged at once at its level, the repeats within
    ``interval`` only at DEBUG, and the next one after the interval carries
    ``repeated`` (how many since the last line) and ``window`` (seconds).
    ``flush`` says how many followed when the kind stops (the outage ended).
    """

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self.logger = logger
        self.interval = interval
        self._lock = threading.Lock()
        self._since: dict[tuple[Any, ...], tuple[float, int]] = {}  # key -> (line at, repeats)
        _summaries.add(self)

    def reset(self) -> None:
        """Forget what was seen (tests start each case as a fresh process would)."""
        with self._lock:
            self._since.clear()

    def note(self, key: tuple[Any, ...], level: int, event_type: str, **data: Any) -> bool:
        """Log or count one event; True when it was logged at ``level``."""
        return self.record(key, level, event_type, lambda: data)

    def record(
        self,
        key: tuple[Any, ...],
        level: int,
        event_type: str,
        data: Callable[[], dict[str, Any]],
    ) -> bool:
        """``note``, with the event's data built by ``data()`` only for a line that is written."""
        now = time.monotonic()
        with self._lock:
            last = self._since.get(key)
            due = last is None or now - last[0] >= self.interval
            self._since[key] = (now, 0) if due else (last[0], last[1] + 1)  # type: ignore[index]
        if not due:
            if self.logger.isEnabledFor(logging.DEBUG):
                log_event(self.logger, logging.DEBUG, event_type, **data())
            return False
        fields = dict(data())
        if last is not None:
            fields.update(repeated=last[1], window=round(now - last[0], 1))
        log_event(self.logger, level, event_type, **fields)
        return True

    def flush(self, key: tuple[Any, ...], level: int, event_type: str, **data: Any) -> None:
        """The kind stopped: say how many repeats followed the last line, if any."""
        with self._lock:
            last = self._since.pop(key, None)
        if last is not None and last[1]:
            window = round(time.monotonic() - last[0], 1)
            log_event(self.logger, level, event_type, repeated=last[1], window=window, **data)
