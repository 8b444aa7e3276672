"""The dashboard's JSON API, and the site's answers to requests it refuses.

Every refusal says what was wrong in its body: JSON on the API (and to
callers that ask for JSON), a short HTML page elsewhere. Never a traceback.
"""

from __future__ import annotations

from http import HTTPStatus

from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import format_html
from django.views import csrf, defaults
from django.views.decorators.cache import never_cache

from resilience.fallback import Envelope
from resilience.middleware import wants_json

from .models import Dashboard
from .sections import LOADERS, section

SAFE_METHODS = ("GET", "HEAD")
MAX_ECHO = 40  # characters of a caller's input repeated in an error


def envelope_response(envelope: Envelope) -> JsonResponse:
    """The contract: 200 for ok and degraded, 503 with Retry-After for error."""
    response = JsonResponse(
        envelope.as_dict(), status=envelope.http_status, encoder=DjangoJSONEncoder
    )
    if envelope.status == "error":
        response["Retry-After"] = str(envelope.retry_after)
    return response


def error_response(request: HttpRequest, status: int, message: str, **extra) -> HttpResponse:
    """A refusal that says why: JSON for the API and JSON clients, else a small HTML page."""
    if wants_json(request):
        return JsonResponse({"error": message, **extra}, status=status)
    title = f"{status} {phrase(status)}"
    page = format_html(
        '<!doctype html><html lang="en"><head><title>{}</title></head>'
        "<body><h1>{}</h1><p>{}</p></body></html>",
        title, title, message,
    )  # fmt: skip
    return HttpResponse(page, status=status, content_type="text/html; charset=utf-8")


def phrase(status: int) -> str:
    """'Not Found' for 404; 'Error' for a code HTTP does not name."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _echo(text: str) -> str:
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 3] + "..."


@never_cache
def section_api(request: HttpRequest, name: str) -> HttpResponse:
    """GET /api/dashboard/<section>/: the page's own rule (staff, view_dashboard); no redirects."""
    if request.method not in SAFE_METHODS:
        response = error_response(request, 405, f"{request.method} is not allowed: use GET.")
        response["Allow"] = ", ".join(SAFE_METHODS)
        return response
    if not request.user.is_authenticated:
        return error_response(
            request, 401, "Authentication required: log in at /admin/ with a staff account."
        )
    dashboard_admin = admin.site.get_model_admin(Dashboard)
    if not admin.site.has_permission(request):
        return error_response(request, 403, "Staff only: this account may not read the dashboard.")
    if not dashboard_admin.has_view_permission(request):
        return error_response(
            request, 403, "This account lacks the questdash.view_dashboard permission: "
            "ask an administrator for it."
        )  # fmt: skip
    if name not in LOADERS:
        return error_response(
            request, 404, f"Unknown section {_echo(name)!r}.", sections=sorted(LOADERS)
        )
    return envelope_response(section(name).get())


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: JSON with what to send on the API, Django's page elsewhere."""
    if wants_json(request):
        return error_response(
            request, 403, f"CSRF check failed ({reason}): send the csrftoken cookie's value "
            "in the X-CSRFToken header, from a page of this site."
        )  # fmt: skip
    return csrf.csrf_failure(request, reason)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if wants_json(request):
        return error_response(request, 400, "Bad request: the request is malformed.")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if wants_json(request):
        return error_response(request, 403, "Forbidden: this account may not do that.")
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if wants_json(request):
        return error_response(request, 404, "Not found: see /api/dashboard/<section>/.")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if wants_json(request):
        return error_response(request, 500, "Server error: it is logged; try again shortly.")
    return defaults.server_error(request)
