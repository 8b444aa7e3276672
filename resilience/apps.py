"""The app config: registers the system checks."""

from django.apps import AppConfig


class ResilienceConfig(AppConfig):
    name = "resilience"
    label = "resilience"
    verbose_name = "Resilience"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the settings checks
