"""Send QuestDB's models to the "questdb" alias, refuse writes to them, keep migrations off it.

The dashboard only reads QuestDB; its data arrives by ingestion. A write
through a QuestDB model (``Price.objects.create``, ``save``, ``update``,
``delete``, ``bulk_create``) is a bug that the site's QuestDB user might
well be allowed to run, so the router refuses it before any SQL is built.
In production give the site a read-only QuestDB user as well (README,
``pg.readonly.user.enabled``). Code that really means to write (the demo
seed) names the alias itself, as ``connections["questdb"]`` or ``using()``.
"""

from __future__ import annotations

from django.db.utils import NotSupportedError

QUESTDB_ALIAS = "questdb"


class ReadOnlyModelError(NotSupportedError):
    """A write was routed to a QuestDB model, which the site only reads."""


def _is_questdb_model(model) -> bool:
    """QuestDB models say so with a class attribute: `questdb_table = True`."""
    return getattr(model, "questdb_table", False)


class QuestDBRouter:
    def db_for_read(self, model, **hints):
        return QUESTDB_ALIAS if _is_questdb_model(model) else None

    def db_for_write(self, model, **hints):
        if _is_questdb_model(model):
            raise ReadOnlyModelError(
                f"{model._meta.label} is read-only: the site never writes to QuestDB "
                "(its rows come from ingestion). Write with QuestDB's own tools, or through "
                f"connections[{QUESTDB_ALIAS!r}] in a management command if you must."
            )
        return None

    def allow_relation(self, obj1, obj2, **hints):
        if _is_questdb_model(type(obj1)) != _is_questdb_model(type(obj2)):
            return False
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if db == QUESTDB_ALIAS:
            return False
        model = hints.get("model")
        if model is not None and _is_questdb_model(model):
            return False
        return None
