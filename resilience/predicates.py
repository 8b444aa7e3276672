"""What counts against a breaker and what it ignores: exception classes, callables, import strings.

``RESILIENCE["RECORD"]`` and ``["IGNORE"]`` (and the breaker's ``record=`` and
``ignore=``) take a list that mixes three kinds of entry, so that "an
``HTTPError`` with status 500 or more counts, a 404 does not" is one line::

    "RECORD": [
        "requests.exceptions.ConnectionError",          # a class, by import string
        lambda exc: getattr(getattr(exc, "response", None), "status_code", 0) >= 500,
        "myapp.breakers.is_upstream_failure",           # a callable, by import string
    ],

A class matches its subclasses (``isinstance``); a callable is asked with
the exception. ``RECORD`` adds to what always counts (connection errors and
timeouts, ``errors.is_connection_error``); ``IGNORE`` wins over both. Built
once per breaker: the system checks and the breaker read the same entries
through ``resolve``.

A callable that raises is a bug in the project, not a verdict: it matches
nothing, and the error is reported once a minute (``observer_failed``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.utils.module_loading import import_string

Predicate = Callable[[BaseException], bool]
Entry = type[BaseException] | Predicate | str

MUST_BE = "a list of exception classes, callables taking the exception, or import strings of either"


def entries(spec: Any) -> tuple[Any, ...]:
    """``spec`` as a tuple of entries: None is none, one class, callable or string is one."""
    if spec is None:
        return ()
    if isinstance(spec, str | type) or callable(spec):
        return (spec,)
    if isinstance(spec, Iterable):
        return tuple(spec)
    return (spec,)


def resolve(entry: Any) -> type[BaseException] | Predicate:
    """An entry as the class or callable it names; ValueError saying why it is neither."""
    if isinstance(entry, str):
        try:
            entry = import_string(entry)
        except (ImportError, ValueError) as exc:
            raise ValueError(f"{entry!r} cannot be imported ({exc})") from exc
    if isinstance(entry, type):
        if issubclass(entry, BaseException):
            return entry
        raise ValueError(f"{entry!r} is a class but not an exception class")
    if callable(entry):
        return entry
    raise ValueError(f"{entry!r} is neither an exception class nor a callable")


def problems(spec: Any) -> list[str]:
    """What is wrong with each entry of ``spec`` (for the system checks); [] when all resolve."""
    if spec is not None and not isinstance(spec, list | tuple):
        return [f"{spec!r} is not a list"]
    found = []
    for entry in entries(spec):
        try:
            resolve(entry)
        except ValueError as exc:
            found.append(str(exc))
    return found


def valid(spec: Any) -> bool:
    return not problems(spec)


def _name(test: Predicate) -> str:
    return getattr(test, "__qualname__", None) or repr(test)


def build(spec: Any, base: Predicate | None = None) -> Predicate:
    """One predicate for ``spec``, true also where ``base`` is (``base`` is asked first)."""
    resolved = [resolve(entry) for entry in entries(spec)]
    classes = tuple(entry for entry in resolved if isinstance(entry, type))
    tests = tuple(entry for entry in resolved if not isinstance(entry, type))
    if not tests:
        if base is None:
            return (lambda exc: isinstance(exc, classes)) if classes else _never
        if not classes:
            return base
        return lambda exc: base(exc) or isinstance(exc, classes)

    def rule(exc: BaseException) -> bool:
        if (base is not None and base(exc)) or isinstance(exc, classes):
            return True
        for test in tests:
            try:
                if test(exc):
                    return True
            except Exception as err:  # noqa: BLE001 - reported; the call's outcome stands
                from .signals import observer_failed

                observer_failed(f"predicate {_name(test)}", err)
        return False

    return rule


def _never(exc: BaseException) -> bool:
    return False
