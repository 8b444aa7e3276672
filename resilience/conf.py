"""The app's settings: defaults in one place, one cached accessor, one set of rules.

Precedence, lowest first: ``DEFAULTS``, then the ``RESILIENCE_*`` environment
variables of the public contract, then the ``RESILIENCE`` dict in Django
settings (explicit code wins; a settings module that wants the environment to
rule simply leaves those keys out). Per-breaker overrides live under
``RESILIENCE["BREAKERS"][name]`` and are merged by ``breaker_config(name)``.

The merged result is cached and cleared on Django's ``setting_changed`` signal,
as django-debug-toolbar does, so ``override_settings`` works in tests.

``RULES`` say what each value must be. The system checks (checks.py) report
every broken rule at startup; ``BreakerConfig``, the frozen object a breaker
is built from, refuses the first one it meets. One table, two readers.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from . import predicates

SETTING_NAME = "RESILIENCE"

DEFAULTS: dict[str, Any] = {
    # What opens the breaker: three rules, each of which can be turned off (None).
    # 1. FAILURE_THRESHOLD consecutive failures, fleet-wide (the story's rule).
    "FAILURE_THRESHOLD": 5,
    # Consecutive timeouts that open it: a timed-out call cost someone the whole
    # wait, so it weighs more (Envoy's consecutive gateway timeouts).
    "TIMEOUT_THRESHOLD": 2,
    # 2. and 3. Over the last WINDOW seconds, across every process sharing the
    # store, once MINIMUM_CALLS calls were made: FAILURE_RATE percent of them
    # failed, or SLOW_CALL_RATE percent took SLOW_CALL_DURATION seconds or more
    # (Resilience4j's time-based window, minimumNumberOfCalls and slow calls).
    "FAILURE_RATE": None,  # percent, 0 < x <= 100
    "SLOW_CALL_RATE": None,  # percent, 0 < x <= 100
    "SLOW_CALL_DURATION": 1.0,  # seconds
    "WINDOW": 10,  # whole seconds
    "MINIMUM_CALLS": 20,
    # Open, then half-open: HALF_OPEN_MAX_CALLS probes per recovery window across
    # all processes; SUCCESS_THRESHOLD of them succeeding closes it, any failure
    # opens it again.
    "RECOVERY_TIMEOUT": 30.0,  # seconds open before a probe is let through
    "HALF_OPEN_MAX_CALLS": 1,
    "SUCCESS_THRESHOLD": 1,
    # Open-duration backoff after repeated failed probes: 30, 60, 120 ... capped.
    "OPEN_BACKOFF_MULTIPLIER": 1.0,  # 1.0 means no backoff
    "MAX_RECOVERY_TIMEOUT": 300.0,
    # What counts besides connection errors and timeouts, and what never counts:
    # exception classes, callables or import strings of either (predicates.py).
    "RECORD": (),
    "IGNORE": (),
    # Where state lives.
    "STORE": "resilience.stores.LocalStore",
    "STORE_OPTIONS": {
        "CACHE_ALIAS": "default",
        "SYNC_INTERVAL": 0.5,  # how stale a process's view of the shared state may be
        "SUCCESS_INTERVAL": 0.1,  # how stale a success may be when the fleet counts failures
        "OUTAGE_RETRY_INTERVAL": 1.0,  # seconds between tries of a cache that went away
        "OPERATION_TIMEOUT": 0.5,  # seconds one cache operation may hold up a request
        "KEY_PREFIX": "resilience",
        "RECORD_TTL": 7 * 24 * 3600,  # seconds an old decision (and a run of failures) is kept
    },
    # Time budgets (Polly's layering): each attempt's connect and query
    # timeouts, inside retry, inside one call's deadline, inside the
    # request's. A request never waits longer than REQUEST_DEADLINE for the
    # dependency, however it hangs.
    "RETRY_ATTEMPTS": 3,  # attempts in total, the first included
    "RETRY_WAITS": (0.1, 0.5, 1.0),  # wait before attempt 2, 3, 4 ... (last repeats)
    "RETRY_JITTER": 0.0,  # up to this many seconds added at random to each wait
    "CONNECT_TIMEOUT": 1.5,  # one connection attempt, and the pooled connection's check
    "QUERY_TIMEOUT": 1.5,  # one statement (the server's statement_timeout too)
    "CALL_DEADLINE": 2.0,  # one guarded call: attempts, waits and timeouts together
    "REQUEST_DEADLINE": 2.5,  # one HTTP request: every guarded call in it together
    # Observability.
    "HISTORY_SIZE": 20,  # recent transitions kept for the admin page
    # The fleet's figures on the breaker page (resilience/fleet/): each web or
    # Celery process publishes its counts to the shared store this often (0: never).
    "FLEET_REPORT_INTERVAL": 1.0,
    # A process not heard from for this long drops off the page's list of processes.
    "FLEET_PROCESS_TIMEOUT": 15.0,
    # "web", "celery"...: how the history and the page name this process (None: from
    # the program, see resilience/process.py). Setting it makes the process report.
    "PROCESS_ROLE": None,
    # Path prefixes whose degraded answers are JSON whatever the Accept header
    # says, such as ("/api/",); elsewhere the Accept header decides.
    "JSON_PATHS": (),
    "BREAKERS": {},  # per-breaker overrides: {"questdb": {"FAILURE_THRESHOLD": 3}}
    # Guarded database aliases (resilience.db): the replicas ReplicaRouter reads from
    # while their breakers let calls through, and the alias it reads from otherwise.
    "READ_REPLICAS": (),
    "PRIMARY_DATABASE": "default",
}

# The public contract's environment variables and how to read each.
ENVIRONMENT: dict[str, tuple[str, type]] = {
    "FAILURE_THRESHOLD": ("RESILIENCE_FAILURE_THRESHOLD", int),
    "RECOVERY_TIMEOUT": ("RESILIENCE_RECOVERY_TIMEOUT", float),
    "HALF_OPEN_MAX_CALLS": ("RESILIENCE_HALF_OPEN_MAX_CALLS", int),
    "CONNECT_TIMEOUT": ("RESILIENCE_CONNECT_TIMEOUT", float),
    "QUERY_TIMEOUT": ("RESILIENCE_QUERY_TIMEOUT", float),
}

# Keys a per-breaker override may set: everything that shapes one breaker.
BREAKER_KEYS = frozenset(DEFAULTS) - {
    "BREAKERS",
    "REQUEST_DEADLINE",
    "FLEET_REPORT_INTERVAL",
    "FLEET_PROCESS_TIMEOUT",
    "PROCESS_ROLE",
    "JSON_PATHS",
    "READ_REPLICAS",
    "PRIMARY_DATABASE",
}

Problem = tuple[str, str, str]  # (check id, message, hint)


def number(value: Any) -> bool:
    """A finite real number (not a bool): nan and inf are not a number of seconds."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class Rule:
    key: str
    check_id: str
    test: Callable[[Any], bool]
    must_be: str


def _percent_or_none(value: Any) -> bool:
    return value is None or (number(value) and 0 < value <= 100)


RULES: list[Rule] = [
    Rule(
        "FAILURE_THRESHOLD",
        "E001",
        lambda v: v is None or (integer(v) and v >= 1),
        "a whole number >= 1, or None (the consecutive rule off)",
    ),
    Rule("TIMEOUT_THRESHOLD", "E001", lambda v: integer(v) and v >= 1, "a whole number >= 1"),
    Rule("RECOVERY_TIMEOUT", "E002", lambda v: number(v) and v > 0, "a positive number of seconds"),
    Rule("HALF_OPEN_MAX_CALLS", "E003", lambda v: integer(v) and v >= 1, "a whole number >= 1"),
    Rule("SUCCESS_THRESHOLD", "E003", lambda v: integer(v) and v >= 1, "a whole number >= 1"),
    Rule("CONNECT_TIMEOUT", "E004", lambda v: number(v) and v > 0, "a positive number of seconds"),
    Rule("QUERY_TIMEOUT", "E004", lambda v: number(v) and v > 0, "a positive number of seconds"),
    Rule("CALL_DEADLINE", "E004", lambda v: number(v) and v > 0, "a positive number of seconds"),
    Rule("REQUEST_DEADLINE", "E004", lambda v: number(v) and v > 0, "a positive number of seconds"),
    Rule("RETRY_ATTEMPTS", "E006", lambda v: integer(v) and v >= 1, "a whole number >= 1"),
    Rule(
        "RETRY_WAITS",
        "E006",
        lambda v: isinstance(v, list | tuple) and bool(v) and all(number(w) and w >= 0 for w in v),
        "a non-empty list of seconds >= 0, such as (0.1, 0.5, 1.0)",
    ),
    Rule("RETRY_JITTER", "E006", lambda v: number(v) and v >= 0, "a number of seconds >= 0"),
    Rule("FAILURE_RATE", "E007", _percent_or_none, "None (off) or a percentage in (0, 100]"),
    Rule("SLOW_CALL_RATE", "E007", _percent_or_none, "None (off) or a percentage in (0, 100]"),
    Rule(
        "SLOW_CALL_DURATION", "E007", lambda v: number(v) and v > 0, "a positive number of seconds"
    ),
    Rule(
        "WINDOW",
        "E007",
        lambda v: integer(v) and 1 <= v <= 3600,
        "a whole number of seconds from 1 to 3600",
    ),
    Rule("MINIMUM_CALLS", "E007", lambda v: integer(v) and v >= 1, "a whole number >= 1"),
    Rule(
        "OPEN_BACKOFF_MULTIPLIER", "E008", lambda v: number(v) and v >= 1, "a number >= 1 (1: off)"
    ),
    Rule("MAX_RECOVERY_TIMEOUT", "E008", lambda v: number(v) and v > 0, "a positive number"),
    Rule("RECORD", "E009", predicates.valid, predicates.MUST_BE),
    Rule("IGNORE", "E009", predicates.valid, predicates.MUST_BE),
    Rule("HISTORY_SIZE", "E013", lambda v: integer(v) and v >= 1, "a whole number >= 1"),
    Rule(
        "FLEET_REPORT_INTERVAL",
        "E016",
        lambda v: number(v) and 0 <= v <= 60,
        "a number of seconds from 0 (off) to 60",
    ),
    Rule(
        "FLEET_PROCESS_TIMEOUT",
        "E016",
        lambda v: number(v) and v > 0,
        "a positive number of seconds",
    ),
    Rule(
        "PROCESS_ROLE",
        "E017",
        lambda v: v is None or (isinstance(v, str) and 0 < len(v.strip()) <= 40),
        'None (detected) or a short name such as "web" or "celery"',
    ),
    Rule(
        "JSON_PATHS",
        "E019",
        lambda v: isinstance(v, list | tuple) and all(str(p).startswith("/") for p in v),
        'a list of path prefixes, each starting with "/", such as ("/api/",)',
    ),
    Rule(
        "READ_REPLICAS",
        "E018",
        lambda v: isinstance(v, list | tuple) and all(isinstance(a, str) and a for a in v),
        'a list of database aliases, such as ["replica"]',
    ),
    Rule(
        "PRIMARY_DATABASE",
        "E018",
        lambda v: isinstance(v, str) and bool(v),
        'a database alias, such as "default"',
    ),
]
_RULES_BY_KEY = {rule.key: rule for rule in RULES}


def where(scope: str, key: str) -> str:
    return f"{scope}[{key!r}]"


def env_hint(key: str) -> str:
    if key in ENVIRONMENT:
        return f" (or the {ENVIRONMENT[key][0]} environment variable)"
    return ""


def value_problems(config: Mapping[str, Any], scope: str) -> list[Problem]:
    """Every broken rule in ``config``, and the combinations that cannot work."""
    problems: list[Problem] = []
    for rule in RULES:
        if rule.key not in config:
            continue
        value = config[rule.key]
        if not rule.test(value):
            found = predicates.problems(value) if rule.check_id == "E009" else []
            said = "; ".join(found) if found else f"{value!r}"
            problems.append(
                (
                    rule.check_id,
                    f"{where(scope, rule.key)} is {said}; it must be {rule.must_be}.",
                    f"Set {where(scope, rule.key)}{env_hint(rule.key)} to {rule.must_be}; "
                    f"the default is {DEFAULTS[rule.key]!r}.",
                )
            )
    return problems + _combination_problems(config, scope)


def _combination_problems(config: Mapping[str, Any], scope: str) -> list[Problem]:
    def get(key: str) -> Any:
        value = config.get(key)
        rule = _RULES_BY_KEY.get(key)
        return value if rule is None or rule.test(value) else None

    problems: list[Problem] = []
    rules = ("FAILURE_THRESHOLD", "FAILURE_RATE", "SLOW_CALL_RATE")
    if all(key in config and config[key] is None for key in rules):
        problems.append(
            (
                "W006",
                f"{where(scope, 'FAILURE_THRESHOLD')}, FAILURE_RATE and SLOW_CALL_RATE are all "
                "None: nothing opens the breaker (an operator still can).",
                "Set at least one of them, or leave FAILURE_THRESHOLD at its default (5).",
            )
        )
    probes, successes = get("HALF_OPEN_MAX_CALLS"), get("SUCCESS_THRESHOLD")
    if probes is not None and successes is not None and successes > probes:
        windows = math.ceil(successes / probes)
        problems.append(
            (
                "W007",
                f"{where(scope, 'SUCCESS_THRESHOLD')} ({successes}) is more than "
                f"HALF_OPEN_MAX_CALLS ({probes}): closing takes {windows} recovery windows of "
                "probes.",
                "Make HALF_OPEN_MAX_CALLS at least SUCCESS_THRESHOLD to close in one window.",
            )
        )
    slow, deadline = get("SLOW_CALL_DURATION"), get("CALL_DEADLINE")
    slow_rule = get("SLOW_CALL_RATE") is not None
    if slow_rule and slow is not None and deadline is not None and slow >= deadline:
        problems.append(
            (
                "W008",
                f"{where(scope, 'SLOW_CALL_DURATION')} ({slow:g} s) is not less than "
                f"CALL_DEADLINE ({deadline:g} s): a guarded call times out before it can "
                "count as slow.",
                "Make SLOW_CALL_DURATION shorter than CALL_DEADLINE.",
            )
        )
    longest, recovery = get("MAX_RECOVERY_TIMEOUT"), get("RECOVERY_TIMEOUT")
    if longest is not None and recovery is not None and longest < recovery:
        problems.append(
            (
                "E008",
                f"{where(scope, 'MAX_RECOVERY_TIMEOUT')} ({longest}) is shorter than "
                f"RECOVERY_TIMEOUT ({recovery}).",
                "Raise MAX_RECOVERY_TIMEOUT to at least RECOVERY_TIMEOUT.",
            )
        )
    connect = get("CONNECT_TIMEOUT")
    for budget in ("CALL_DEADLINE", "REQUEST_DEADLINE"):
        seconds = get(budget)
        if connect is not None and seconds is not None and seconds < connect:
            problems.append(
                (
                    "E012",
                    f"{where(scope, budget)} ({seconds:g} s) is shorter than one connection "
                    f"attempt (CONNECT_TIMEOUT, {connect:g} s): a new connection could never "
                    "be made within it.",
                    f"Raise {budget} above CONNECT_TIMEOUT{env_hint('CONNECT_TIMEOUT')}, or "
                    "lower CONNECT_TIMEOUT.",
                )
            )
    call, request = get("CALL_DEADLINE"), get("REQUEST_DEADLINE")
    if call is not None and request is not None and request < call:
        problems.append(
            (
                "W004",
                f"{where(scope, 'REQUEST_DEADLINE')} ({request:g} s) is shorter than "
                f"CALL_DEADLINE ({call:g} s): calls in a request are cut to the request's budget.",
                "Make REQUEST_DEADLINE at least CALL_DEADLINE, or lower CALL_DEADLINE.",
            )
        )
    report, timeout = get("FLEET_REPORT_INTERVAL"), get("FLEET_PROCESS_TIMEOUT")
    if report and timeout is not None and timeout <= 2 * report:
        problems.append(
            (
                "E016",
                f"{where(scope, 'FLEET_PROCESS_TIMEOUT')} ({timeout:g} s) is not more than two "
                f"reports (FLEET_REPORT_INTERVAL, {report:g} s): live processes would flicker "
                "off the breaker page.",
                "Make FLEET_PROCESS_TIMEOUT more than twice FLEET_REPORT_INTERVAL.",
            )
        )
    query = get("QUERY_TIMEOUT")
    if query is not None and call is not None and query > call:
        problems.append(
            (
                "W005",
                f"{where(scope, 'QUERY_TIMEOUT')} ({query:g} s) is longer than CALL_DEADLINE "
                f"({call:g} s): the call's deadline, not the server, ends a slow statement.",
                "Make QUERY_TIMEOUT at most CALL_DEADLINE.",
            )
        )
    return problems


def _from_environment() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, (variable, kind) in ENVIRONMENT.items():
        raw = os.environ.get(variable)
        if raw is None or not raw.strip():
            continue
        try:
            value = kind(raw.strip())
        except (ValueError, OverflowError):
            value = None
        if value is None or not number(value):
            raise ImproperlyConfigured(
                f"{variable}={raw!r} is not a valid {kind.__name__}; "
                f"set it to a finite number such as {DEFAULTS[key]!r} or unset it."
            )
        values[key] = value
    return values


def _freeze(config: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(config)


@functools.cache
def get_config() -> Mapping[str, Any]:
    """The merged, read-only configuration (cached until settings change)."""
    from django.conf import settings

    user = getattr(settings, SETTING_NAME, None) or {}
    if not isinstance(user, Mapping):
        raise ImproperlyConfigured(
            f"settings.{SETTING_NAME} must be a dict, not {type(user).__name__}."
        )
    merged = {**DEFAULTS, **_from_environment(), **user}
    options = dict(DEFAULTS["STORE_OPTIONS"])
    options.update(user.get("STORE_OPTIONS") or {})
    merged["STORE_OPTIONS"] = options
    return _freeze(merged)


def breaker_config(name: str) -> Mapping[str, Any]:
    """The configuration of one breaker: the global one plus BREAKERS[name]."""
    config = get_config()
    overrides = (config.get("BREAKERS") or {}).get(name) or {}
    if not overrides:
        return config
    merged = {**config, **overrides}
    if "STORE_OPTIONS" in overrides:
        merged["STORE_OPTIONS"] = {**config["STORE_OPTIONS"], **overrides["STORE_OPTIONS"]}
    return _freeze(merged)


# Keys that were renamed or whose meaning changed: the checks say what to use instead.
RENAMED: dict[str, str] = {
    "FAILURE_RATE_THRESHOLD": "FAILURE_RATE (percent over the last WINDOW seconds, fleet-wide)",
    "SLIDING_WINDOW_SIZE": "WINDOW (now whole seconds, not a count of calls)",
    "RECORD_EXCEPTIONS": "RECORD (exception classes, callables or import strings)",
    "IGNORE_EXCEPTIONS": "IGNORE (exception classes, callables or import strings)",
}


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """How one breaker and its guarded calls behave, validated once against ``RULES``.

    Built from settings by ``breaker_settings(name)`` (cached until they
    change), or by hand (``CircuitBreaker(name, failure_threshold=3)``):
    every reader takes its numbers from here, never from the settings dict.
    """

    failure_threshold: int | None = DEFAULTS["FAILURE_THRESHOLD"]
    timeout_threshold: int = DEFAULTS["TIMEOUT_THRESHOLD"]
    failure_rate: float | None = DEFAULTS["FAILURE_RATE"]
    slow_call_rate: float | None = DEFAULTS["SLOW_CALL_RATE"]
    slow_call_duration: float = DEFAULTS["SLOW_CALL_DURATION"]
    window: int = DEFAULTS["WINDOW"]
    minimum_calls: int = DEFAULTS["MINIMUM_CALLS"]
    recovery_timeout: float = DEFAULTS["RECOVERY_TIMEOUT"]
    half_open_max_calls: int = DEFAULTS["HALF_OPEN_MAX_CALLS"]
    success_threshold: int = DEFAULTS["SUCCESS_THRESHOLD"]
    backoff_multiplier: float = DEFAULTS["OPEN_BACKOFF_MULTIPLIER"]
    max_recovery_timeout: float | None = None  # the default, or recovery_timeout if longer
    record: Any = DEFAULTS["RECORD"]  # entries (predicates.py): what counts besides...
    ignore: Any = DEFAULTS["IGNORE"]  # ...connection errors and timeouts; what never counts
    history_size: int = DEFAULTS["HISTORY_SIZE"]
    retry_attempts: int = DEFAULTS["RETRY_ATTEMPTS"]
    retry_waits: tuple[float, ...] = DEFAULTS["RETRY_WAITS"]
    retry_jitter: float = DEFAULTS["RETRY_JITTER"]
    call_deadline: float = DEFAULTS["CALL_DEADLINE"]
    # Built from the fields above, once.
    counts: Callable[[BaseException], bool] = field(init=False, repr=False, compare=False)
    ignores: Callable[[BaseException], bool] = field(init=False, repr=False, compare=False)
    retry: Any = field(init=False, repr=False, compare=False)  # RetryPolicy
    once: Any = field(init=False, repr=False, compare=False)  # the same, one attempt

    # field -> settings key, where the names differ
    _KEYS = MappingProxyType({"backoff_multiplier": "OPEN_BACKOFF_MULTIPLIER"})

    def __post_init__(self) -> None:
        if self.max_recovery_timeout is None:
            longest = max(self.recovery_timeout, DEFAULTS["MAX_RECOVERY_TIMEOUT"])
            object.__setattr__(self, "max_recovery_timeout", longest)
        # Frozen all the way down: tuples; one exception class or callable is a list of one.
        object.__setattr__(self, "record", predicates.entries(self.record))
        object.__setattr__(self, "ignore", predicates.entries(self.ignore))
        if isinstance(self.retry_waits, list):
            object.__setattr__(self, "retry_waits", tuple(self.retry_waits))
        for f in self._settings_fields():
            value, rule = getattr(self, f.name), _RULES_BY_KEY[self.key(f.name)]
            if not rule.test(value):
                detail = "; ".join(predicates.problems(value)) if rule.check_id == "E009" else ""
                raise ValueError(f"{f.name} is {value!r}; it must be {rule.must_be}. {detail}")
        values = {self.key(f.name): getattr(self, f.name) for f in self._settings_fields()}
        for rule_id, message, _ in _combination_problems(values, "BreakerConfig"):
            if not rule_id.startswith("W"):
                raise ValueError(message)
        from .errors import is_connection_error
        from .retry import RetryPolicy

        derived = {
            "counts": predicates.build(self.record, is_connection_error),
            "ignores": predicates.build(self.ignore),
            "retry": RetryPolicy(self.retry_attempts, tuple(self.retry_waits), self.retry_jitter),
        }
        derived["once"] = derived["retry"].without_retries()
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @classmethod
    def _settings_fields(cls) -> list[Any]:
        return [f for f in fields(cls) if f.init]

    @classmethod
    def key(cls, field_name: str) -> str:
        return cls._KEYS.get(field_name, field_name.upper())

    @classmethod
    def from_settings(cls, config: Mapping[str, Any]) -> BreakerConfig:
        return cls(
            **{
                f.name: config[cls.key(f.name)]
                for f in cls._settings_fields()
                if cls.key(f.name) in config
            }
        )

    @property
    def longest_open(self) -> float:
        return float(self.max_recovery_timeout)  # type: ignore[arg-type]

    @property
    def windowed(self) -> bool:
        """Whether a rule over the last ``window`` seconds is on (calls are then tallied)."""
        return self.failure_rate is not None or self.slow_call_rate is not None

    @property
    def timeout_weight(self) -> int:
        """How many failures one timeout counts for: TIMEOUT_THRESHOLD of them open it."""
        if self.failure_threshold is None:
            return 1
        return max(1, math.ceil(self.failure_threshold / self.timeout_threshold))

    def open_duration(self, trips: int) -> float:
        """How long the breaker stays open after its ``trips``-th open in a row (backoff)."""
        grown = self.recovery_timeout * self.backoff_multiplier ** max(0, trips - 1)
        return min(grown, self.longest_open)


_built: dict[str, tuple[Mapping[str, Any], BreakerConfig]] = {}


def breaker_settings(name: str) -> BreakerConfig:
    """Breaker ``name``'s settings, validated; built again when the settings change.

    Keyed on ``get_config()``'s answer, so whoever clears that cache (a test,
    ``override_settings``) gets fresh settings here too.
    """
    config = get_config()
    built = _built.get(name)
    if built is None or built[0] is not config:
        built = _built[name] = (config, BreakerConfig.from_settings(breaker_config(name)))
    return built[1]


@receiver(setting_changed)
def _clear_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        get_config.cache_clear()
