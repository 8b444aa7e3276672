"""QuestDB over the PostgreSQL wire protocol, on Django's postgresql backend.

Django's stock engine refuses QuestDB twice: the server says it is version
11.3 (Django 5.2 wants 14+; DatabaseFeatures drops the gate), and its time
zone is GMT, so Django sends `set_config('TimeZone', ...)`, which QuestDB
does not have. This backend skips both, stays in autocommit, never opens
server-side cursors, and speaks QuestDB's SQL where it differs from
PostgreSQL's (operations.py, compiler.py, functions.py).

The circuit breaker is mixed in from ``resilience.db.guard``, as any guarded
alias has it: every new connection and every statement passes the "questdb"
guard, so no code reaches QuestDB around it. This file is the QuestDB
dialect alone.
"""

from django.db.backends.postgresql.base import DatabaseWrapper as PostgresDatabaseWrapper

from resilience.db.guard import GuardedDatabaseMixin

from .features import DatabaseFeatures
from .functions import register_functions
from .introspection import DatabaseIntrospection
from .operations import DatabaseOperations

register_functions()


class DatabaseWrapper(GuardedDatabaseMixin, PostgresDatabaseWrapper):
    vendor = "questdb"
    display_name = "QuestDB"
    features_class = DatabaseFeatures
    introspection_class = DatabaseIntrospection
    ops_class = DatabaseOperations

    # QuestDB's type names: used by Cast() (migrations never touch QuestDB).
    # https://questdb.com/docs/query/datatypes/overview/
    data_types = {
        "AutoField": "int",
        "BigAutoField": "long",
        "BinaryField": "binary",
        "BooleanField": "boolean",
        "CharField": "varchar",  # no length limit to declare
        "DateField": "date",
        "DateTimeField": "timestamp",
        "DecimalField": "decimal(%(max_digits)s, %(decimal_places)s)",
        "DurationField": "long",  # microseconds, as timestamp differences are
        "FileField": "varchar",
        "FilePathField": "varchar",
        "FloatField": "double",
        "IntegerField": "int",
        "BigIntegerField": "long",
        "GenericIPAddressField": "ipv4",
        "IPAddressField": "ipv4",
        "PositiveBigIntegerField": "long",
        "PositiveIntegerField": "int",
        "PositiveSmallIntegerField": "short",
        "SlugField": "varchar",
        "SmallAutoField": "short",
        "SmallIntegerField": "short",
        "TextField": "varchar",
        "UUIDField": "uuid",
    }
    data_types_suffix = {}
    data_type_check_constraints = {}
    # "~*" does not exist: a case-insensitive regex is Java's (?i) flag.
    # https://questdb.com/docs/query/operators/text/
    operators = {**PostgresDatabaseWrapper.operators, "iregex": "~ ('(?i)' || %s)"}

    def _configure_timezone(self, connection):
        # QuestDB stores and returns UTC; it has no set_config to change that.
        return False

    def chunked_cursor(self):
        # QuestDB has no server-side (named) cursors: iterate a plain one.
        return self.cursor()
