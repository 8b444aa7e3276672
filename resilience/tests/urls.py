"""The app's URLs as a project mounts them: the admin (breaker page), health, metrics, and two
views that call a dependency which is down (a refused port), for the middleware's tests."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import path

from resilience.health import BreakerState, CacheRoundTrip, DisclosingHealthCheckView
from resilience.metrics import MetricsView


def refused(request: HttpRequest) -> HttpResponse:
    """A view whose dependency refuses: the failure escapes it, as an unguarded call's would."""
    raise ConnectionRefusedError(111, "Connection refused")


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
]
