"""The app's own test settings: no questdash, a custom user model, the admin installed.

    pytest resilience/tests        # resilience/tests/pytest.ini picks these settings

A project as small as a new user's: SQLite in memory, a local-memory cache,
the admin (the breaker page), and a user model without ``username``. Tests
that need Redis start their own (testkit.redis_server); tests of the app
without the admin override INSTALLED_APPS.
"""

SECRET_KEY = "resilience-tests-only"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "health_check",  # its templates: the health view's HTML
    "resilience",
    "resilience.tests.users",
]
AUTH_USER_MODEL = "users.EmailUser"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "resilience.middleware.BreakerMiddleware",
]
ROOT_URLCONF = "resilience.tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
USE_TZ = True
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins
HEALTH_TOKEN = "health-token-for-tests"
METRICS_TOKEN = "metrics-token-for-tests"
RESILIENCE: dict = {}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "resilience.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "loggers": {"resilience": {"handlers": ["console"], "level": "WARNING"}},
}
