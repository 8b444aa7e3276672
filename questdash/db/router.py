"""Send QuestDB's models to the "questdb" alias and keep migrations off it."""

from __future__ import annotations

QUESTDB_ALIAS = "questdb"


def _is_questdb_model(model) -> bool:
    """QuestDB models say so with a class attribute: `questdb_table = True`."""
    return getattr(model, "questdb_table", False)


class QuestDBRouter:
    def db_for_read(self, model, **hints):
        return QUESTDB_ALIAS if _is_questdb_model(model) else None

    def db_for_write(self, model, **hints):
        return QUESTDB_ALIAS if _is_questdb_model(model) else None

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
