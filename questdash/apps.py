from django.apps import AppConfig


class QuestdashConfig(AppConfig):
    name = "questdash"
    verbose_name = "QuestDB dashboard"

    def ready(self) -> None:
        # Prometheus counters fed by resilience's signals, in every process
        # (web and Celery), and the latency of each QuestDB statement.
        from resilience import metrics

        from . import checks  # noqa: F401 - registers the system checks

        metrics.install(time_databases=["questdb"])
