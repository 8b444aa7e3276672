from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_migrate


def create_cache_table(using: str = "default", **kwargs) -> None:
    """`migrate` alone sets the site up: the database cache's table (idempotent).

    The breaker's shared state and the last good copies live there when
    REDIS_URL is unset; without it every request would warn and /ht/live/ fail.
    """
    call_command("createcachetable", database=using, verbosity=0)


class QuestdashConfig(AppConfig):
    name = "questdash"
    verbose_name = "QuestDB dashboard"

    def ready(self) -> None:
        # Prometheus counters fed by resilience's signals, in every process
        # (web and Celery), and the latency of each QuestDB statement.
        from resilience import metrics

        from . import checks  # noqa: F401 - registers the system checks

        metrics.install(time_databases=["questdb"])
        post_migrate.connect(create_cache_table, sender=self, dispatch_uid="questdash.cache_table")
