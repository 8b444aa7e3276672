"""Turn a dependency failure that escapes a view into a degraded response.

Never Django's 500 page: the API gets the JSON envelope with status
"error", a staff page gets a page with a banner; both 503 with Retry-After.
Every response says each breaker's state in the X-Circuit-Breaker header.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

from .breaker import all_breakers
from .errors import CircuitOpenError, OperationFailed, describe, is_connection_error, scrub
from .fallback import DEFAULT_RETRY_AFTER
from .logs import log_failure

logger = logging.getLogger("resilience.middleware")

HEADER = "X-Circuit-Breaker"


def is_dependency_failure(exc: BaseException) -> bool:
    """A dependency that cannot be reached (not a bug in a query: that stays a 500)."""
    if isinstance(exc, CircuitOpenError):
        return True
    if isinstance(exc, OperationFailed):
        return exc.connection_error
    return is_connection_error(exc)


def breaker_header() -> str:
    return ", ".join(f"{b.name}={b.public_state}" for b in all_breakers())


def wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    )


class BreakerMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if header := breaker_header():
            response[HEADER] = header
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_dependency_failure(exception):
            return None
        reason = scrub(describe(exception))
        log_failure(logger, "resilience.middleware.degraded_response", exception,
                    operation=f"{request.method} {request.path}")  # fmt: skip
        breakers = {b.name: b.public_state for b in all_breakers()}
        if wants_json(request):
            response = JsonResponse(
                {
                    "status": "error",
                    "data": None,
                    "cached_at": None,
                    "reason": reason,
                    "breaker": next(iter(breakers.values()), "closed"),
                },
                status=503,
            )
        else:
            response = TemplateResponse(
                request,
                "resilience/degraded.html",
                {"reason": reason, "breakers": breakers, "title": "Service degraded"},
                status=503,
            )
        response["Retry-After"] = str(
            getattr(exception, "retry_after", None) or DEFAULT_RETRY_AFTER
        )
        return response
