"""The breaker page: every breaker's state at a glance, and manual control.

Reset, force open and force closed are POST with CSRF, need the
`resilience.control_circuitbreaker` permission, and go to the admin log.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from .breaker import all_breakers, get_breaker
from .models import CircuitBreaker

ACTIONS = {
    "reset": ("reset", "Reset: closed, counts cleared"),
    "force-open": ("force_open", "Forced open: every call fails fast"),
    "force-closed": ("force_closed", "Forced closed: every call passes, failures ignored"),
}
REFRESH_SECONDS = 5


class ReadOnlyAdmin(admin.ModelAdmin):
    """Nobody adds, changes or deletes here, a superuser neither: the admin's view permission
    decides who may look."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class PageAdmin(ReadOnlyAdmin):
    """An admin entry for a table-less model that shows one page instead of a list."""

    page_template: str
    page_title: str

    def page_context(self, request: HttpRequest) -> dict:
        raise NotImplementedError

    def get_urls(self):
        """The page alone: no add, change, history or delete views of rows that do not exist."""
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        return [path("", self.admin_site.admin_view(self.changelist_view), name=name)]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": self.page_title,
            "opts": self.model._meta,
            **self.page_context(request),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.page_template, context)


@admin.register(CircuitBreaker)
class CircuitBreakerAdmin(PageAdmin):
    page_template = "resilience/breakers.html"
    page_title = "Circuit breakers"

    def has_control_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("resilience.control_circuitbreaker")

    def get_urls(self):
        return [
            path(
                "<str:name>/<slug:action>/",
                self.admin_site.admin_view(self.action_view),
                name="resilience_circuitbreaker_action",
            ),
            *super().get_urls(),
        ]

    def page_context(self, request: HttpRequest) -> dict:
        return {
            "breakers": [b.snapshot(history=True) for b in all_breakers()],
            "actions": [(slug, label) for slug, (_, label) in ACTIONS.items()],
            "can_control": self.has_control_permission(request),
            "refresh_seconds": REFRESH_SECONDS,
        }

    def action_view(self, request, name: str, action: str):
        """POST only (CSRF is checked by the middleware), with the control permission."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_control_permission(request):
            raise PermissionDenied
        if action not in ACTIONS or name not in {b.name for b in all_breakers()}:
            raise Http404(f"No breaker {name!r} or action {action!r}.")
        method, label = ACTIONS[action]
        breaker = get_breaker(name)
        before = breaker.public_state
        getattr(breaker, method)()
        message = f"{label} (was {before}, now {breaker.public_state})."
        self.log_change(request, CircuitBreaker(name=name), f"{name}: {message}")
        messages.success(request, f"Breaker {name}: {message}")
        return HttpResponseRedirect(reverse("admin:resilience_circuitbreaker_changelist"))
