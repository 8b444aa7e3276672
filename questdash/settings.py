"""Settings for questdash.

Everything comes from the environment (the contract in DESIGN.md), with
defaults that run on one machine with nothing but Python and Java: SQLite,
a database cache that web and worker processes share, no Redis.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.management.utils import get_random_secret_key

from questdash.env import (
    env_bool,
    env_ip,
    env_list,
    env_log_level,
    env_number,
    env_text,
    env_token,
    env_url,
)
from questdash.files import create_private_once, touch_private
from resilience.conf import DEFAULTS as RESILIENCE_DEFAULTS

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("QUESTDASH_VAR_DIR", BASE_DIR / "var"))  # git-ignored
VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)  # holds secrets: this user's only


def _secret_key() -> str:
    """A stable key for the local demo: generated once into var/, never committed.

    Created private and atomically, so that processes starting together agree on one key.
    """
    if key := os.environ.get("DJANGO_SECRET_KEY"):
        return key
    return create_private_once(VAR_DIR / "secret_key", get_random_secret_key)


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1", required=True)

# Behind TLS in production, DJANGO_SECURE=true turns on secure cookies, HSTS
# and the HTTPS redirect (health and metrics probes stay on plain HTTP).
if env_bool("DJANGO_SECURE"):
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^ht/", r"^metrics$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 31_536_000  # a year: what `check --deploy` and preload lists ask
    SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "health_check",
    "resilience",
    "questdash",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Every 4xx and 5xx says what went wrong in its body (405s come without one).
    "questdash.middleware.ErrorBodyMiddleware",
    # Last, so it sees a QuestDB failure first when one escapes a view.
    "resilience.middleware.BreakerMiddleware",
]
# A refused CSRF check answers JSON on the API, Django's page elsewhere.
CSRF_FAILURE_VIEW = "questdash.views.csrf_failure"

ROOT_URLCONF = "questdash.urls"
WSGI_APPLICATION = "questdash.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- QuestDB -----------------------------------------------------------------
QUESTDB_HOST = env_text("QUESTDB_HOST", "127.0.0.1", example="questdb.internal")
QUESTDB_PORT = env_number("QUESTDB_PORT", "8812", int)
QUESTDB_USER = env_text("QUESTDB_USER", "admin")
QUESTDB_PASSWORD = env_text("QUESTDB_PASSWORD", "quest", pattern=r"[^\x00-\x1f\x7f]+", secret=True)
QUESTDB_DATABASE = env_text("QUESTDB_DATABASE", "qdb")
# The local server that `manage.py questdb start` runs (not used in production).
QUESTDB_HTTP_PORT = env_number("QUESTDB_HTTP_PORT", "9000", int)
QUESTDB_HEALTH_PORT = env_number("QUESTDB_HEALTH_PORT", "9003", int)
QUESTDB_ILP_PORT = env_number("QUESTDB_ILP_PORT", "9009", int)
QUESTDB_DATA_DIR = Path(os.environ.get("QUESTDB_DATA_DIR", VAR_DIR / "questdb"))
QUESTDB_HEAP = env_text("QUESTDB_HEAP", "512m", pattern=r"[1-9][0-9]*[kKmMgG]?")
# It listens on loopback only: its web console and ingestion ports have no login of
# their own. Set an address (0.0.0.0: every interface) only behind a firewall.
QUESTDB_BIND_HOST = env_ip("QUESTDB_BIND_HOST", "127.0.0.1")

# The breaker's timeouts live in resilience.conf (defaults and the RESILIENCE_*
# variables); QuestDB's own statement_timeout is set from the same value.
env_number("RESILIENCE_CONNECT_TIMEOUT", RESILIENCE_DEFAULTS["CONNECT_TIMEOUT"], float)  # checked
QUERY_TIMEOUT = env_number("RESILIENCE_QUERY_TIMEOUT", RESILIENCE_DEFAULTS["QUERY_TIMEOUT"], float)

# Sessions and password hashes: private from the first byte (SQLite's WAL files follow).
_SQLITE_FILE = VAR_DIR / "db.sqlite3"
touch_private(_SQLITE_FILE)

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _SQLITE_FILE,
        # WAL: the web and worker processes read while one writes.
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    },
    "questdb": {
        "ENGINE": "questdash.db.backend",
        "HOST": QUESTDB_HOST,
        "PORT": QUESTDB_PORT,
        "USER": QUESTDB_USER,
        "PASSWORD": QUESTDB_PASSWORD,
        "NAME": QUESTDB_DATABASE,
        # QuestDB drops connections idle for 300 s: keep ours for less, and
        # check each one before a request reuses it.
        "CONN_MAX_AGE": 240,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            # Real bind parameters on the server (QuestDB supports them), and
            # prepared, pipelined executemany (no pgbouncer in front of QuestDB).
            "server_side_binding": True,
            "prepare_threshold": 5,
            # The connect budget is enforced by the guard (resilience.db.guard), to the
            # millisecond; psycopg's own connect_timeout (2 s at least) is only a backstop.
            "options": f"-c statement_timeout={int(QUERY_TIMEOUT * 1000)}",
        },
        "TEST": {"MIRROR": "questdb"},
    },
}
# --- Dashboard -------------------------------------------------------------------
# The story's hard-coded "LIMIT 50", and the other limits, as settings.
DASHBOARD_ACTIVE_SESSIONS_LIMIT = env_number("DASHBOARD_ACTIVE_SESSIONS_LIMIT", "50", int)
DASHBOARD_POSITIONS_LIMIT = env_number("DASHBOARD_POSITIONS_LIMIT", "200", int)
DASHBOARD_CHART_MINUTES = env_number("DASHBOARD_CHART_MINUTES", "120", int)
DASHBOARD_REFRESH_INTERVAL = env_number("DASHBOARD_REFRESH_INTERVAL", "15", float)
# A copy this young is served as fresh: a burst of requests makes one query.
DASHBOARD_FRESH_FOR = env_number("DASHBOARD_FRESH_FOR", "2", float)

DATABASE_ROUTERS = ["questdash.db.router.QuestDBRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, Redis, Celery ------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", "", ("redis", "rediss", "unix"))

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "TIMEOUT": 300,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        },
    }
else:
    # A database cache in SQLite: shared by the web and worker processes
    # without Redis. MAX_ENTRIES is high so last-known-good copies never cull.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "django_cache",
            "TIMEOUT": 300,
            "OPTIONS": {"MAX_ENTRIES": 1_000_000},
        },
    }

RESILIENCE = {
    # Every process (web workers, Celery) shares one breaker through the cache:
    # Redis in production, the SQLite database cache in the demo.
    "STORE": "resilience.stores.CacheStore",
    # Named here so every process has it from the start: header, admin page, metrics.
    "BREAKERS": {"questdb": {}},
    # The dashboard's API answers JSON, whatever a client's Accept header says.
    "JSON_PATHS": ("/api/",),
}

# Celery (questdash/celery.py): Redis when REDIS_URL is set, else kombu's
# filesystem transport under var/, so the demo runs without Redis.
# CELERY_BROKER_URL may point the queues at another Redis database than the
# cache's, so that clearing the cache never drops queued refreshes.
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", "") or REDIS_URL or "filesystem://localhost//"
if not REDIS_URL:
    _CELERY_DIR = VAR_DIR / "celery"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_CELERY_DIR / "queue"),
        "data_folder_out": str(_CELERY_DIR / "queue"),
        "control_folder": str(_CELERY_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.2,  # the folder is polled: keep the delay well under an interval
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True  # the results are the cached copies, not task results
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # a lagging worker does not hoard refreshes
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep the JSON log lines of LOGGING
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "refresh-dashboard": {
        "task": "questdash.tasks.refresh_dashboard",
        "schedule": DASHBOARD_REFRESH_INTERVAL,
        # A refresh not started within one interval is dropped, not queued up.
        "options": {"expires": DASHBOARD_REFRESH_INTERVAL},
    },
}

# --- Health checks and metrics (/ht/, /ht/live/, /metrics) ---------------------
# /ht/ fails when the beat's last run, or a section's last good copy, is older.
HEALTH_HEARTBEAT_MAX_AGE = env_number(
    "HEALTH_HEARTBEAT_MAX_AGE", 3 * DASHBOARD_REFRESH_INTERVAL + 15, float
)
HEALTH_FRESHNESS_MAX_AGE = env_number(
    "HEALTH_FRESHNESS_MAX_AGE", 4 * DASHBOARD_REFRESH_INTERVAL + 30, float
)
# The QuestDB check answers within this many seconds, even when QuestDB hangs.
HEALTH_QUESTDB_TIMEOUT = env_number("HEALTH_QUESTDB_TIMEOUT", "0.8", float)
# Anonymous callers of /ht/ get each check's name and status, and /metrics refuses
# them. A staff session, or `Authorization: Bearer <token>` with these, sees all.
HEALTH_TOKEN = env_token("HEALTH_TOKEN")
METRICS_TOKEN = env_token("METRICS_TOKEN")

# --- Auth, i18n, static --------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"  # collectstatic fills it; WhiteNoise serves it
STATIC_ROOT.mkdir(exist_ok=True)
# Files served at the site's root by WhiteNoise: /favicon.ico, which every browser asks for.
WHITENOISE_ROOT = BASE_DIR / "questdash" / "root"
LOGIN_URL = "admin:login"

# --- Logging: JSON lines (the contract) ------------------------------------------
LOG_LEVEL = env_log_level("DJANGO_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "resilience.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "resilience": {"level": LOG_LEVEL},
        "questdash": {"level": LOG_LEVEL},
        # A failing check is in the /ht/ answer; its traceback adds nothing.
        "health_check": {"level": "ERROR"},
    },
}
