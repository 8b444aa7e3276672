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
    **extra: Any,
) -> None:
    """A failure event, plus its traceback on a separate DEBUG record (``<event>_traceback``)."""
    log_event(logger, level, event_type, **failure_data(exc, operation), **extra)
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
