"""Settings from the environment: a bad value stops startup and names its variable.

``settings.py`` reads every variable through these helpers. A value that
does not parse, is NaN or infinite, or is out of range raises
``ImproperlyConfigured`` at import, with the variable, what it got and what
to set; never a raw ``ValueError`` from deep inside the settings, and never
a value that passes startup and fails the first request.

``NUMBERS`` holds the range of each numeric variable. The system checks of
``questdash.checks`` hold settings set in code to the same rules.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class Number:
    """What a numeric setting may be: its type and its range."""

    kind: type = float
    minimum: float | None = None  # inclusive
    above: float | None = None  # exclusive
    maximum: float | None = None  # inclusive

    def problem(self, value: object) -> str | None:
        """Why ``value`` is not allowed, or None when it is."""
        kinds = (int,) if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            return f"it must be {'a whole number' if self.kind is int else 'a number'}"
        if not math.isfinite(value):
            return "it must be a finite number (not NaN or infinity)"
        if self.above is not None and value <= self.above:
            return f"it must be above {self.above:g}"
        if self.minimum is not None and value < self.minimum:
            return f"it must be at least {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"it must be at most {self.maximum:g}"
        return None


PORT = Number(int, minimum=1, maximum=65535)
COUNT = Number(int, minimum=1)
SECONDS = Number(float, above=0)

NUMBERS: dict[str, Number] = {
    "QUESTDB_PORT": PORT,
    "QUESTDB_HTTP_PORT": PORT,
    "QUESTDB_HEALTH_PORT": PORT,
    "QUESTDB_ILP_PORT": PORT,
    "RESILIENCE_CONNECT_TIMEOUT": SECONDS,
    "RESILIENCE_QUERY_TIMEOUT": SECONDS,
    "DASHBOARD_ACTIVE_SESSIONS_LIMIT": COUNT,
    "DASHBOARD_POSITIONS_LIMIT": COUNT,
    "DASHBOARD_CHART_MINUTES": COUNT,
    "DASHBOARD_REFRESH_INTERVAL": SECONDS,
    "DASHBOARD_FRESH_FOR": Number(float, minimum=0),
    "HEALTH_HEARTBEAT_MAX_AGE": SECONDS,
    "HEALTH_FRESHNESS_MAX_AGE": SECONDS,
    "HEALTH_QUESTDB_TIMEOUT": SECONDS,
}


def _refuse(name: str, raw: str, why: str, fix: str) -> ImproperlyConfigured:
    shown = raw if len(raw) <= 80 else raw[:77] + "..."
    return ImproperlyConfigured(f"{name}={shown!r} is not valid: {why}. {fix}")


def env_number(name: str, default: str | float, kind: type = float) -> int | float:
    """A number from the environment, within the range ``NUMBERS`` gives for ``name``."""
    raw = os.environ.get(name, str(default)).strip()
    fix = f"Set {name} to a number such as {default}, or unset it for the default."
    try:
        value = kind(raw)
    except (ValueError, OverflowError):
        raise _refuse(name, raw, f"it is not a {kind.__name__}", fix) from None
    if problem := NUMBERS.get(name, Number(kind)).problem(value):
        raise _refuse(name, raw, problem, fix)
    return value


def env_bool(name: str, default: bool = False) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case); anything else is a startup error."""
    raw = os.environ.get(name, str(default)).strip()
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise _refuse(name, raw, "it is not a yes/no value", f"Set {name} to true or false.")


def env_list(name: str, default: str, *, required: bool = False) -> list[str]:
    """A comma-separated list; ``required`` refuses one that names nothing."""
    raw = os.environ.get(name, default)
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if required and not items:
        raise _refuse(name, raw, "it names nothing", f"Set {name} to a comma-separated list.")
    return items


def env_text(
    name: str, default: str, *, pattern: str = r"\S+", example: str = "", secret: bool = False
) -> str:
    """A string that must match ``pattern`` in full (by default: not empty, no spaces).

    A ``secret`` is never repeated in the error, and may not hold control
    characters either (a newline would add lines to QuestDB's server.conf).
    """
    raw = os.environ.get(name, default)
    if not re.fullmatch(pattern, raw):
        if secret:
            raise ImproperlyConfigured(
                f"{name} is not valid: it is empty or holds a control character "
                f"(a newline, a tab). Set {name} to the password itself, on one line."
            )
        raise _refuse(
            name, raw, "it has the wrong form", f"Set it like {example or default!r}, or unset it."
        )
    return raw


def env_url(name: str, default: str, schemes: tuple[str, ...] = ()) -> str:
    """A URL (one with one of ``schemes``, when given), or empty: unset."""
    raw = os.environ.get(name, default).strip()
    scheme, sep, rest = raw.partition("://")
    known = scheme in schemes if schemes else re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.\-]*", scheme)
    if raw and not (sep and known and rest):
        kinds = " or ".join(schemes) if schemes else "scheme://"
        example = f"{schemes[0] if schemes else 'redis'}://host:6379/0"
        raise _refuse(
            name, raw, f"it must be a {kinds} URL", f"Set it like {example!r}, or unset it."
        )
    return raw


def env_log_level(name: str, default: str = "INFO") -> str:
    raw = os.environ.get(name, default).strip()
    if raw.upper() not in LOG_LEVELS:
        raise _refuse(
            name, raw, "it is not a log level", f"Set it to one of {', '.join(LOG_LEVELS)}."
        )
    return raw.upper()


def env_ip(name: str, default: str) -> str:
    """An IP address to listen on (127.0.0.1, ::1, 0.0.0.0 ...); host names do not bind."""
    raw = os.environ.get(name, default).strip()
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        raise _refuse(
            name, raw, "it is not an IP address", f"Set it to an address such as {default}."
        ) from None
    return raw


def env_token(name: str) -> str:
    """A shared secret for probes and scrapers: unset (no token) or long enough to guess never."""
    raw = os.environ.get(name, "").strip()
    if raw and len(raw) < MIN_TOKEN_LENGTH:
        raise ImproperlyConfigured(
            f"{name} is {len(raw)} characters long: a token must have at least "
            f"{MIN_TOKEN_LENGTH}. Generate one with `python -c 'import secrets; "
            f"print(secrets.token_urlsafe(32))'`, or unset {name}."
        )
    return raw
