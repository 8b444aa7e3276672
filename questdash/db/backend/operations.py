import datetime

from django.conf import settings
from django.db.backends.postgresql.operations import (
    DatabaseOperations as PostgresDatabaseOperations,
)


class DatabaseOperations(PostgresDatabaseOperations):
    def get_db_converters(self, expression):
        converters = super().get_db_converters(expression)
        if expression.output_field.get_internal_type() == "DateTimeField":
            converters.append(self.convert_datetimefield_value)
        return converters

    def convert_datetimefield_value(self, value, expression, connection):
        """QuestDB timestamps carry no zone and are always UTC: make them aware."""
        if isinstance(value, datetime.datetime) and value.tzinfo is None and settings.USE_TZ:
            return value.replace(tzinfo=datetime.UTC)
        return value
