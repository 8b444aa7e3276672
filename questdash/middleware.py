"""Every refusal has a body that says why.

Django's 405s (``require_GET``, ``View.http_method_not_allowed``,
``HttpResponseNotAllowed``) and some other refusals come with an empty body;
a client then sees a bare status. This fills an empty 4xx or 5xx with the
site's error answer (JSON for the API, HTML elsewhere), keeping its headers.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .views import error_response, phrase


def explain(request: HttpRequest, response: HttpResponse) -> str:
    if response.status_code == 405:
        allowed = response.get("Allow") or "none"
        return f"{request.method} is not allowed here; allowed methods: {allowed}."
    return f"{phrase(response.status_code)}."


class ErrorBodyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400 or response.streaming or response.content:
            return response
        filled = error_response(request, response.status_code, explain(request, response))
        response.content = filled.content
        response["Content-Type"] = filled["Content-Type"]
        return response
