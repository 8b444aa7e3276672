"""The app's URLs as a project mounts them: the admin (breaker page), health, metrics, and
views that call a dependency which is down (a refused port), for the middleware's and the
fleet's tests."""

import socket

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from resilience import CircuitOpenError, OperationFailed, guarded
from resilience.health import BreakerState, CacheRoundTrip, DisclosingHealthCheckView
from resilience.metrics import MetricsView


def refused(request: HttpRequest) -> HttpResponse:
    """A view whose dependency refuses: the failure escapes it, as an unguarded call's would."""
    raise ConnectionRefusedError(111, "Connection refused")


def guarded_refused(request: HttpRequest) -> HttpResponse:
    """One guarded call to a port that refuses (``?port=``), on breaker "payments"."""
    port = int(request.GET["port"])
    try:
        guarded("connect", lambda: socket.create_connection(("127.0.0.1", port), 1).close(),
                breaker_name="payments", retry=False)  # fmt: skip
    except CircuitOpenError:
        return JsonResponse({"outcome": "rejected"}, status=503)
    except OperationFailed:
        return JsonResponse({"outcome": "failed"}, status=502)
    return JsonResponse({"outcome": "ok"})


def broken(request: HttpRequest) -> HttpResponse:
    """A bug, not an outage: stays a 500."""
    raise ValueError("a bug in the view")


urlpatterns = [
    path("admin/", admin.site.urls),
    path(
        "ht/",
        DisclosingHealthCheckView.as_view(
            checks=[BreakerState, (CacheRoundTrip, {"alias": "default"})]
        ),
    ),
    path("metrics", MetricsView.as_view()),
    path("refused/", refused),
    path("api/refused/", refused),
    path("broken/", broken),
    path("guarded-refused/", guarded_refused),
]
