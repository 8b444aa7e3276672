"""The breaker page: every breaker across the fleet at a glance, and manual control.

Whichever process answers, the page shows the same thing: the state and
history from the shared store (read afresh for the page), and the figures
every process published there (resilience/fleet/). Reset, force open and
force closed are POST with CSRF, need the `resilience.control_circuitbreaker`
permission, name the operator in the shared history, and are read back from
the store (resilience/control.py): only a decision that landed goes to the
admin log; one that did not is an error on the page.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.text import slugify

from . import fleet
from .breaker import BreakerSnapshot, CircuitBreaker, Transition
from .breaker.snapshot import transitions
from .control import ACTIONS, MAX_REASON, apply_action, clean_reason, known_breakers
from .models import CircuitBreaker as CircuitBreakerModel
from .process import identity
from .registry import get_breaker
from .timeline import Timeline, state_timeline

REFRESH_SECONDS = 5
TIMELINE_RECORDS = 200  # decisions read for the hour's timeline


@dataclass(frozen=True)
class BreakerCard:
    """One breaker as the page shows it: its state, the fleet's figures, its history."""

    snapshot: BreakerSnapshot
    fleet: fleet.FleetView
    outage: fleet.Outage | None
    probes: tuple[fleet.ProbeOutcome, ...]
    longest_open: float
    history: tuple[Transition, ...]  # newest first
    timeline: Timeline  # drawn by resilience/timeline.svg
    store_uid: str  # the store's current decision

    @property
    def name(self) -> str:
        return self.snapshot.name

    @property
    def next_probe_in(self) -> float | None:
        """Seconds until the next probe, on the store's clock (the page counts down from it)."""
        if self.snapshot.next_probe_at is None:
            return None
        return max(0.0, self.snapshot.next_probe_at - self.snapshot.taken_at)

    @property
    def open_for(self) -> float | None:
        return None if self.outage is None else self.outage.lasted(self.snapshot.taken_at)

    @property
    def stale(self) -> list[fleet.ProcessView]:
        """Processes whose view is not the store's current decision."""
        return [p for p in self.fleet.processes if p.uid != self.store_uid]


def breaker_card(breaker: CircuitBreaker) -> BreakerCard:
    """Read one breaker for the page: the store afresh, its history and the fleet's figures."""
    breaker.store.sync(breaker.name, force=True)  # the store's head, whichever worker answers
    snapshot = breaker.snapshot()
    records = breaker.store.history(breaker.name, TIMELINE_RECORDS)
    view = fleet.fleet_view(breaker)
    now = snapshot.taken_at
    bands = fleet.state_bands(records, now)
    return BreakerCard(
        snapshot=snapshot,
        fleet=view,
        outage=fleet.current_outage(records),
        probes=fleet.recent_probes(records),
        longest_open=fleet.longest_open(records, now),
        history=tuple(reversed(transitions(records, "")[-breaker.config.history_size :])),
        timeline=state_timeline(bands, view.minutes, now, key=f"cb-{slugify(breaker.name)}"),
        store_uid=breaker.record.uid,
    )


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


@admin.register(CircuitBreakerModel)
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
            "cards": [breaker_card(b) for b in known_breakers()],
            "actions": [(slug, label) for slug, (_, label) in ACTIONS.items()],
            "can_control": self.has_control_permission(request),
            "refresh_seconds": REFRESH_SECONDS,
            "answered_by": identity().actor,
            "max_reason": MAX_REASON,
        }

    def action_view(self, request, name: str, action: str):
        """POST only (CSRF is checked by the middleware), with the control permission."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_control_permission(request):
            raise PermissionDenied
        if action not in ACTIONS or name not in {b.name for b in known_breakers()}:
            raise Http404(f"No breaker {name!r} or action {action!r}.")
        result = apply_action(
            get_breaker(name),
            action,
            actor=f"operator {request.user.get_username()}",
            reason=clean_reason(request.POST.get("reason")),
        )
        if result.landed:  # the admin log holds decisions that happened, nothing else
            self.log_change(request, CircuitBreakerModel(name=name), f"{name}: {result.message}")
            messages.success(request, f"Breaker {name}: {result.message}")
        else:
            messages.error(request, f"Breaker {name}: {result.message}")
        return HttpResponseRedirect(reverse("admin:resilience_circuitbreaker_changelist"))
