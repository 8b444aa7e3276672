"""The ways to wrap a call in a breaker: ``call``, ``call_async``, a decorator, ``with``.

Each is the same three steps (take a permit, run, report the outcome); the
state machine behind ``acquire``/``record_*`` lives in machine.py.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ..signals import call_succeeded

if TYPE_CHECKING:
    from .machine import CircuitBreaker, Permit

P = ParamSpec("P")
R = TypeVar("R")

# Permits held by ``with breaker:`` blocks, per thread / task: (breaker, permit, started).
_HELD: contextvars.ContextVar[tuple[tuple[Any, Any, float], ...]] = contextvars.ContextVar(
    "resilience_held_permits", default=()
)


def decorate(
    fn: Callable[..., Any],
    call: Callable[..., Any],
    call_async: Callable[..., Awaitable[Any]],
) -> Callable[..., Any]:
    """Wrap ``fn`` so each call goes through ``call`` (or ``call_async`` for coroutines)."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await call_async(fn, *args, **kwargs)

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return call(fn, *args, **kwargs)

    return wrapper


class CallStyles:
    """Mixed into ``CircuitBreaker``: everything here is built on its permit API."""

    __slots__ = ()

    def call(self: CircuitBreaker, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn`` through the breaker."""
        cell = self._cell
        permit: Permit = cell.rec
        started = self._mono()
        if not (permit.admits and cell.sync_due > started):  # the closed path, inlined
            permit = self._admit()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self.record_failure(exc, permit, self._mono() - started)
            raise
        # A success with nothing to tell: one counter bump. Anything else (failures to
        # clear, a success due to the store, a slow call, a listener) takes the long way.
        if permit.admits and not (
            cell.failures or cell.alert or cell.success_due <= started or call_succeeded.receivers
        ):
            limit = self._slow_after
            if limit is None or self._mono() - started < limit:
                self._succeeded()
                return result
        self.record_success(permit, self._mono() - started)
        return result

    async def call_async(
        self: CircuitBreaker, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``fn`` through the breaker."""
        permit = self.acquire()
        started = self._mono()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self.record_failure(exc, permit, self._mono() - started)
            raise
        self.record_success(permit, self._mono() - started)
        return result

    def __call__(self: CircuitBreaker, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a function or coroutine function."""
        wrapper = decorate(fn, self.call, self.call_async)
        wrapper.breaker = self  # type: ignore[attr-defined]
        return wrapper

    def __enter__(self: CircuitBreaker) -> CircuitBreaker:
        permit = self.acquire()
        _HELD.set((*_HELD.get(), (self, permit, self._mono())))
        return self

    def __exit__(
        self: CircuitBreaker,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        held = _HELD.get()
        for index in range(len(held) - 1, -1, -1):
            if held[index][0] is self:
                _, permit, started = held[index]
                _HELD.set(held[:index] + held[index + 1 :])
                break
        else:
            raise RuntimeError(f"breaker {self.name!r}: __exit__ without __enter__")
        seconds = self._mono() - started
        if exc is None:
            self.record_success(permit, seconds)
        else:
            self.record_failure(exc, permit, seconds)
        return False

    async def __aenter__(self: CircuitBreaker) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(
        self: CircuitBreaker,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        return self.__exit__(exc_type, exc, traceback)
