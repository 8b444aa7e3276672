from django.apps import AppConfig


class QuestdashConfig(AppConfig):
    name = "questdash"
    verbose_name = "QuestDB dashboard"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
