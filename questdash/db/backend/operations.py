import datetime

from django.conf import settings
from django.db.backends.postgresql.operations import (
    DatabaseOperations as PostgresDatabaseOperations,
)


def as_utc(value):
    """QuestDB timestamps carry no zone and are always UTC: say so."""
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value


class DatabaseOperations(PostgresDatabaseOperations):
    def get_db_converters(self, expression):
        converters = super().get_db_converters(expression)
        if expression.output_field.get_internal_type() == "DateTimeField":
            converters.append(self.convert_datetimefield_value)
        return converters

    def convert_datetimefield_value(self, value, expression, connection):
        return as_utc(value) if settings.USE_TZ else value
