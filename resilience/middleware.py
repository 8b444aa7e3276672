"""Each request's time budget, and a dependency failure that escapes a view as a degraded response.

Every request runs inside a ``Deadline`` of ``REQUEST_DEADLINE`` seconds
(2.5 s): every guarded call in it (several sections of a page, a health
check) is cut to what is left, requests waiting on another's refresh wait
no longer, and so is every round trip to the shared cache (``RequestScope``).
That is the outer timeout of Polly's layering: per-attempt timeouts inside
retry inside the breaker, inside one call's deadline, inside the request's.

Never Django's 500 page: a client that prefers JSON (its ``Accept`` header,
or a path under ``RESILIENCE["JSON_PATHS"]``) gets the JSON envelope with
status "error", a browser a page with a banner; both 503 with Retry-After.
The page extends the admin's base template when ``django.contrib.admin`` is
installed, and a plain page of the app's own otherwise.
Every response to a staff session says each breaker's state in the
X-Circuit-Breaker header (others learn nothing of the site's dependencies).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.apps import apps
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

from .conf import get_config
from .disclosure import is_staff
from .errors import describe, is_unreachable, scrub
from .fallback import DEFAULT_RETRY_AFTER, Envelope
from .logs import Summary, log_failure
from .registry import all_breakers
from .scope import request_scope

logger = logging.getLogger("resilience.middleware")
_summary = Summary(logger)  # a failure escaping every request alike: one line a minute

HEADER = "X-Circuit-Breaker"


def breaker_header() -> str:
    return ", ".join(f"{b.name}={b.public_state}" for b in all_breakers())


def wants_json(request: HttpRequest) -> bool:
    """JSON under a configured path prefix, or when the client prefers it to HTML (Accept)."""
    if request.path.startswith(tuple(get_config()["JSON_PATHS"])):
        return True
    preferred = request.get_preferred_type(["text/html", "application/json"])
    return preferred == "application/json"


def base_template() -> str:
    """The admin's look where the admin is installed; the app's own plain page elsewhere."""
    if apps.is_installed("django.contrib.admin"):
        return "admin/base_site.html"
    return "resilience/base.html"


class BreakerMiddleware:
    """Sync and async capable: under ASGI it stays on the event loop, and whatever may wait
    on the shared store (each breaker's state for the header) runs in a thread."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        # The header too is read within the request's budget (a store look).
        with request_scope(get_config()["REQUEST_DEADLINE"]):
            response = self.get_response(request)
            if is_staff(getattr(request, "user", None)) and (header := breaker_header()):
                response[HEADER] = header
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        with request_scope(get_config()["REQUEST_DEADLINE"]):
            response = await self.get_response(request)
            user = await request.auser() if hasattr(request, "auser") else None
            if is_staff(user) and (header := await asyncio.to_thread(breaker_header)):
                response[HEADER] = header
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_unreachable(exception):  # a bug in a query stays a 500
            return None
        reason = scrub(describe(exception))
        log_failure(logger, "resilience.middleware.degraded_response", exception,
                    operation=f"{request.method} {request.path}", summary=_summary)  # fmt: skip
        breakers = {b.name: b.public_state for b in all_breakers()}
        if wants_json(request):
            state = breakers.get(getattr(exception, "breaker", None), "closed")
            envelope = Envelope("error", None, None, reason, state)
            response = JsonResponse(envelope.as_dict(), status=envelope.http_status)
        else:
            response = TemplateResponse(
                request,
                "resilience/degraded.html",
                {
                    "reason": reason,
                    "breakers": breakers,
                    "title": "Service degraded",
                    "base_template": base_template(),
                },
                status=503,
            )
        response["Retry-After"] = str(
            getattr(exception, "retry_after", None) or DEFAULT_RETRY_AFTER
        )
        return response
