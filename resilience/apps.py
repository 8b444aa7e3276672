"""The app config: registers the system checks."""

from django.apps import AppConfig


class ResilienceConfig(AppConfig):
    name = "resilience"
    label = "resilience"
    verbose_name = "Resilience"

    def ready(self) -> None:
        from django.core.signals import request_started

        from . import checks  # noqa: F401 - registers the settings checks
        from .fleet.reporter import request_started as serving

        request_started.connect(serving, dispatch_uid="resilience.fleet.serving")
