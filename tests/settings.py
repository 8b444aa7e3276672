"""Test settings: the product's settings on test ports, with a distinctive password.

The password is searched for in every response and log line the tests see,
so a leak fails a test. The ports keep the tests off a demo server on the
default ports.
"""

import os

TEST_ENV = {
    "QUESTDB_PORT": "18812",
    "QUESTDB_HTTP_PORT": "19000",
    "QUESTDB_HEALTH_PORT": "19003",
    "QUESTDB_ILP_PORT": "19009",
    "QUESTDB_PASSWORD": "Zq7-leak-canary-Pw",
    "QUESTDB_HEAP": "384m",
    "RESILIENCE_CONNECT_TIMEOUT": "2",
    "RESILIENCE_QUERY_TIMEOUT": "2",
    "DJANGO_SECRET_KEY": "tests-only-secret-key-not-for-production-0123456789",
}
for _name, _value in TEST_ENV.items():
    os.environ.setdefault(_name, _value)
# The tests' own QuestDB, always: an exported QUESTDB_HOST (production's, say) or
# data folder never reaches them, and the seed drops only this server's tables.
OWN_SERVER = {
    "QUESTDB_HOST": "127.0.0.1",
    "QUESTDB_PASSWORD": TEST_ENV["QUESTDB_PASSWORD"],
    "QUESTDB_DATA_DIR": os.path.join(
        os.path.dirname(os.path.dirname(__file__)), "var", "test-questdb"
    ),
}
os.environ.update(OWN_SERVER)

from questdash.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test logins

# A file, not memory: threads and subprocesses in the tests see the same database.
DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}  # noqa: F405
