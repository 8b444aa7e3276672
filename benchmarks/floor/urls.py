"""The product's URLs, and ``/bench/floor/``: what any JSON view behind the site's session
auth and middleware costs, with no work of its own."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.cache import never_cache

from questdash.urls import handler400, handler403, handler404, handler500, urlpatterns

FLOOR = "/bench/floor/"


@never_cache
def floor(request: HttpRequest) -> HttpResponse:
    """A staff session's user is loaded, as for the API; nothing else is done."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "Authentication required."}, status=401)
    return JsonResponse({"status": "ok", "data": []})


urlpatterns = [*urlpatterns, path(FLOOR.strip("/") + "/", floor)]
__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
