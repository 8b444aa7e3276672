"""The dashboard: a staff page in the admin, and the same sections as JSON."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from resilience.fallback import Envelope

from .sections import LOADERS, section


def envelope_response(envelope: Envelope) -> JsonResponse:
    """The contract: 200 for ok and degraded, 503 with Retry-After for error."""
    response = JsonResponse(
        envelope.as_dict(), status=envelope.http_status, encoder=DjangoJSONEncoder
    )
    if envelope.status == "error":
        response["Retry-After"] = str(envelope.retry_after)
    return response


def _refuse(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@never_cache
@require_GET
def section_api(request: HttpRequest, name: str) -> JsonResponse:
    """GET /api/dashboard/<section>/ for a staff session; no login redirect for APIs."""
    if not request.user.is_authenticated:
        return _refuse(401, "Authentication required: log in at /admin/ with a staff account.")
    if not request.user.is_staff:
        return _refuse(403, "Staff only: this account may not read the dashboard.")
    if name not in LOADERS:
        return JsonResponse(
            {"error": f"Unknown section {name!r}.", "sections": sorted(LOADERS)}, status=404
        )
    return envelope_response(section(name).get())
