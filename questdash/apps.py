from django.apps import AppConfig


class QuestdashConfig(AppConfig):
    name = "questdash"
    verbose_name = "QuestDB dashboard"
