"""The dashboard's JSON API, and the site's answers to requests it refuses.

Every refusal says what was wrong in its body: JSON on the API (and to
callers that ask for JSON), a short HTML page elsewhere. Never a traceback.
"""

from __future__ import annotations

import functools
from http import HTTPStatus

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import connections, router
from django.db.models import Q
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
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
_ANY_USER = -982_451_653  # stands for the user's id in the query built once (never an id)


def envelope_response(envelope: Envelope) -> HttpResponse:
    """The contract: 200 for ok and degraded, 503 with Retry-After for error."""
    response = HttpResponse(
        envelope.to_json(), status=envelope.http_status, content_type="application/json"
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
    if (refused := refusal(request)) is not None:
        return refused
    if name not in LOADERS:
        return error_response(
            request, 404, f"Unknown section {_echo(name)!r}.", sections=sorted(LOADERS)
        )
    return envelope_response(section(name).get())


def refusal(request: HttpRequest) -> HttpResponse | None:
    """Why a dashboard read is refused (405, 401, 403: no redirects), or None to serve it.

    The rule of the dashboard's JSON: /api/dashboard/<section>/ and the page's live/.
    """
    if request.method not in SAFE_METHODS:
        response = error_response(request, 405, f"{request.method} is not allowed: use GET.")
        response["Allow"] = ", ".join(SAFE_METHODS)
        return response
    if not request.user.is_authenticated:
        return error_response(
            request, 401, "Authentication required: log in at /admin/ with a staff account."
        )
    if not admin.site.has_permission(request):
        return error_response(request, 403, "Staff only: this account may not read the dashboard.")
    if not may_view_dashboard(request):
        return error_response(
            request, 403, "This account lacks the questdash.view_dashboard permission: "
            "ask an administrator for it."
        )  # fmt: skip
    return None


def may_view_dashboard(request: HttpRequest) -> bool:
    """The admin's rule for the dashboard page (view or change permission), in one small query.

    Django's ``has_perm`` loads every permission of the user and of their
    groups through the ORM on each request: two queries, about 1 ms, most of
    it spent building them, which made the permission check the API's
    largest cost. With Django's own ``ModelBackend`` the same question is
    one query built once per process (``_view_permission_query``) that
    finds the one permission that matters (about 30 µs); any other backend
    gets the admin's own check.
    """
    if list(settings.AUTHENTICATION_BACKENDS) != [MODEL_BACKEND]:
        return admin.site.get_model_admin(Dashboard).has_view_permission(request)
    user = request.user
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    alias, sql, params = _view_permission_query()
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, [user.pk if value == _ANY_USER else value for value in params])
        return cursor.fetchone() is not None


@functools.cache
def _view_permission_query() -> tuple[str, str, tuple]:
    """ModelBackend's question for the dashboard: does the user, or one of their groups,
    hold its view or change permission? SQL compiled by the ORM once (any user model)."""
    opts = Dashboard._meta
    codenames = [f"{action}_{opts.model_name}" for action in ("view", "change")]
    query = (
        Permission.objects.filter(
            Q(user__pk=_ANY_USER) | Q(group__user__pk=_ANY_USER),
            content_type__app_label=opts.app_label,
            codename__in=codenames,
        )
        .order_by()
        .values_list("pk")[:1]
    )
    alias = router.db_for_read(Permission)
    sql, params = query.query.get_compiler(alias).as_sql()
    return alias, sql, tuple(params)


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
