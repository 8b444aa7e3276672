from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "resilience.tests.users"
    label = "users"
    default_auto_field = "django.db.models.AutoField"
