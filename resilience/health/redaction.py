"""The app's health view: who sees a failure's detail (staff and token holders; everyone
else each check's name and status), 503 when a check fails, 400 for a malformed request."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from health_check import HealthCheck
from health_check.base import HealthCheckResult
from health_check.exceptions import HealthCheckException, ServiceWarning
from health_check.views import HealthCheckView, MediaType

from ..disclosure import amay_see_detail

PUBLIC_LABELS = ("alias", "name", "query")  # never a host, port, URL or client


def public_name(check: HealthCheck) -> str:
    """``QuestDB(alias='questdb')``, ``Redis``: the class and its harmless labels only."""
    labels = check.labels
    shown = ", ".join(f"{key}={labels[key]!r}" for key in PUBLIC_LABELS if key in labels)
    return f"{type(check).__name__}({shown})" if shown else type(check).__name__


class Undisclosed(HealthCheckException):
    """A failure shown by its kind alone ("Unavailable"), without its message."""

    def __init__(self, original: HealthCheckException) -> None:
        super().__init__("", timestamp=original.timestamp)
        self.message_type = original.message_type

    def __str__(self) -> str:
        return self.message_type


@dataclasses.dataclass(repr=False)
class Redacted(HealthCheck):
    """Runs ``inner`` as it is; reports its public name and, on failure, the kind only."""

    inner: HealthCheck

    def run(self) -> None:  # pragma: no cover - get_result runs the inner check instead
        raise NotImplementedError

    async def get_result(self, executor: Any = None) -> HealthCheckResult:
        result = await self.inner.get_result(executor)
        error = Undisclosed(result.error) if result.error else None
        return HealthCheckResult(check=self, error=error, time_taken=result.time_taken)

    def __repr__(self) -> str:
        return public_name(self.inner)

    @property
    def labels(self) -> dict[str, str]:
        labels = self.inner.labels
        return {"check": labels["check"]} | {k: labels[k] for k in PUBLIC_LABELS if k in labels}


FORMATS = ("json", "text", "atom", "rss", "openmetrics")


def malformed(request: HttpRequest) -> str | None:
    """What is wrong with a health request's ``format`` or ``Accept``, or None."""
    fmt = request.GET.get("format")
    if fmt is not None and fmt not in FORMATS:
        return f"Unknown format: use ?format= one of {', '.join(FORMATS)}, or none for HTML."
    try:
        list(MediaType.parse_header(request.headers.get("Accept") or "*/*"))
    except ValueError:
        return "Malformed Accept header: send media types such as application/json or text/plain."
    return None


class DisclosingHealthCheckView(HealthCheckView):
    """Failure detail for staff and holders of ``settings.<token_setting>``; names for the rest.

    A failing check answers 503 (the library says 500, which reads as a bug in
    the site), and one with warnings only (``ServiceWarning``) 200; a malformed
    ``format`` or ``Accept`` a 400 that says why; an unacceptable one a 406 in
    JSON. Without a request (``manage.py health_check --no-http``, a shell) it
    shows everything.
    """

    token_setting = "HEALTH_TOKEN"
    disclose = True

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if problem := malformed(request):
            return JsonResponse({"error": problem}, status=400)
        self.disclose = await amay_see_detail(request, self.token_setting)
        response = await super().get(request, *args, **kwargs)
        if response.status_code == 406:  # the library says so in text/plain
            return JsonResponse({"error": response.content.decode()}, status=406)
        if response.status_code == 500:  # the library's "a check failed": not a server error
            # A warning (metrics dropped) is said, but fails nothing: serving goes on.
            warned = all(isinstance(r.error, ServiceWarning) for r in self.results if r.error)
            response.status_code = 200 if warned else 503
        return response

    def get_checks(self) -> Iterator[HealthCheck]:
        for check in super().get_checks():
            yield check if self.disclose else Redacted(check)
