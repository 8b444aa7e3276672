"""Settings: defaults, environment, RESILIENCE dict, per-breaker overrides; system checks."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.core import checks as django_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from resilience.checks import check_settings
from resilience.conf import DEFAULTS, breaker_config, get_config
from resilience.registry import all_breakers, get_breaker
from resilience.stores import CacheStore, LocalStore


def ids(messages):
    return sorted(m.id for m in messages)


def test_defaults_are_the_story_configuration(settings, monkeypatch):
    for name in ("FAILURE_THRESHOLD", "RECOVERY_TIMEOUT", "HALF_OPEN_MAX_CALLS"):
        monkeypatch.delenv(f"RESILIENCE_{name}", raising=False)
    settings.RESILIENCE = {}
    config = get_config()
    assert (config["FAILURE_THRESHOLD"], config["RECOVERY_TIMEOUT"]) == (5, 30.0)
    assert config["HALF_OPEN_MAX_CALLS"] == 1
    assert config["RETRY_ATTEMPTS"] == 3 and config["RETRY_WAITS"] == (0.1, 0.5, 1.0)
    assert config["STORE"] == "resilience.stores.LocalStore"


def test_environment_then_settings_precedence(settings, monkeypatch):
    monkeypatch.setenv("RESILIENCE_FAILURE_THRESHOLD", "7")
    monkeypatch.setenv("RESILIENCE_RECOVERY_TIMEOUT", "12.5")
    monkeypatch.setenv("RESILIENCE_QUERY_TIMEOUT", "2")
    settings.RESILIENCE = {"RECOVERY_TIMEOUT": 3}
    config = get_config()
    assert config["FAILURE_THRESHOLD"] == 7  # from the environment
    assert config["RECOVERY_TIMEOUT"] == 3  # settings win over the environment
    assert config["QUERY_TIMEOUT"] == 2.0


def test_a_bad_environment_value_is_reported_not_crashed_on(settings, monkeypatch):
    monkeypatch.setenv("RESILIENCE_FAILURE_THRESHOLD", "five")
    with pytest.raises(ImproperlyConfigured, match="RESILIENCE_FAILURE_THRESHOLD='five'"):
        get_config()
    messages = check_settings()
    assert ids(messages) == ["resilience.E000"]
    assert "not a valid int" in messages[0].msg


def test_override_settings_clears_the_cache_and_the_registry():
    with override_settings(RESILIENCE={"FAILURE_THRESHOLD": 2}):
        assert get_config()["FAILURE_THRESHOLD"] == 2
        assert get_breaker("questdb").failure_threshold == 2
    with override_settings(RESILIENCE={"FAILURE_THRESHOLD": 9}):
        assert get_breaker("questdb").failure_threshold == 9


def test_per_breaker_overrides(settings):
    settings.RESILIENCE = {
        "FAILURE_THRESHOLD": 4,
        "STORE_OPTIONS": {"SYNC_INTERVAL": 1.0},
        "BREAKERS": {"reports": {"FAILURE_THRESHOLD": 2, "STORE_OPTIONS": {"KEY_PREFIX": "r"}}},
    }
    reports = breaker_config("reports")
    assert reports["FAILURE_THRESHOLD"] == 2
    assert reports["STORE_OPTIONS"] == {
        **DEFAULTS["STORE_OPTIONS"],
        "SYNC_INTERVAL": 1.0,
        "KEY_PREFIX": "r",
    }
    assert breaker_config("questdb")["FAILURE_THRESHOLD"] == 4
    assert [b.name for b in all_breakers()] == ["reports"]  # configured breakers are listed
    assert get_breaker("reports").failure_threshold == 2


def test_registry_gives_one_breaker_per_name_and_shares_the_store(settings):
    settings.RESILIENCE = {
        "STORE": "resilience.stores.CacheStore",
        "STORE_OPTIONS": {"CACHE_ALIAS": "default"},
    }
    a, b = get_breaker("a"), get_breaker("b")
    assert get_breaker("a") is a
    assert isinstance(a.store, CacheStore) and a.store is b.store


class HTTPError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def test_record_and_ignore_from_settings_take_classes_callables_and_import_strings(settings):
    """Issue 20: "an HTTPError with status >= 500 counts, a 404 does not" is one line."""
    settings.RESILIENCE = {
        "FAILURE_THRESHOLD": 1,
        "RECORD": ["builtins.LookupError", lambda exc: getattr(exc, "status", 0) >= 500],
        "IGNORE": ["builtins.KeyError", lambda exc: isinstance(exc, UnicodeError)],
    }
    breaker = get_breaker("x")
    outcomes = [
        breaker.record_failure(exc, breaker.acquire())
        for exc in (KeyError("a subclass listed to ignore"), UnicodeError(), HTTPError(404))
    ]
    assert [o.value for o in outcomes] == ["ignored", "ignored", "success"]
    assert breaker.public_state == "closed"
    breaker.record_failure(HTTPError(503), breaker.acquire())
    assert breaker.public_state == "open"
    breaker.reset()
    breaker.record_failure(IndexError("recorded by import string"), breaker.acquire())
    assert breaker.public_state == "open"
    breaker.reset()
    breaker.record_failure(ConnectionRefusedError(111, "refused"), breaker.acquire())
    assert breaker.public_state == "open"  # RECORD adds to what always counts


def test_a_predicate_that_raises_matches_nothing_and_is_reported(settings, events):
    def broken(exc):
        return exc.response.status_code >= 500  # most exceptions have no response

    settings.RESILIENCE = {"FAILURE_THRESHOLD": 1, "RECORD": [broken]}
    breaker = get_breaker("x")
    assert breaker.record_failure(ValueError("no response"), breaker.acquire()).value == "success"
    assert breaker.public_state == "closed"
    (reported,) = events.of("resilience.observer_failed")
    assert "broken" in reported["operation"] and reported["error_type"] == "AttributeError"


def test_project_settings_pass_the_checks():
    assert [m for m in check_settings() if m.level >= django_checks.ERROR] == []


def test_app_registers_its_checks():
    config = apps.get_app_config("resilience")
    assert config.label == "resilience"
    found = django_checks.run_checks(tags=["resilience"])
    assert all(m.id.startswith("resilience.") for m in found)
    assert check_settings in django_checks.registry.registry.get_checks()


@pytest.mark.parametrize(
    ("overrides", "expected_id", "words"),
    [
        ({"FAILURE_THRESHOLD": 0}, "resilience.E001", ">= 1"),
        ({"RECOVERY_TIMEOUT": float("nan")}, "resilience.E002", "positive"),
        ({"CALL_DEADLINE": float("inf")}, "resilience.E004", "positive"),
        ({"CALL_DEADLINE": 0.5}, "resilience.E012", "shorter than one connection attempt"),
        ({"REQUEST_DEADLINE": 0.5}, "resilience.E012", "shorter than one connection attempt"),
        ({"REQUEST_DEADLINE": 1.5}, "resilience.W004", "cut to the request's budget"),
        ({"QUERY_TIMEOUT": 3.0}, "resilience.W005", "not the server, ends a slow statement"),
        ({"RECOVERY_TIMEOUT": -5}, "resilience.E002", "positive"),
        ({"HALF_OPEN_MAX_CALLS": 0}, "resilience.E003", ">= 1"),
        ({"CONNECT_TIMEOUT": -1}, "resilience.E004", "positive"),
        ({"QUERY_TIMEOUT": 0}, "resilience.E004", "positive"),
        ({"CALL_DEADLINE": -1}, "resilience.E004", "positive"),
        (
            {"STORE": "resilience.stores.RedisStoreThatDoesNotExist"},
            "resilience.E005",
            "cannot be imported",
        ),
        ({"STORE": "collections.OrderedDict"}, "resilience.E005", "not a BreakerStore"),
        ({"RETRY_ATTEMPTS": 0}, "resilience.E006", ">= 1"),
        ({"RETRY_WAITS": ()}, "resilience.E006", "non-empty"),
        ({"RETRY_WAITS": (0.1, -1)}, "resilience.E006", "non-empty"),
        ({"FAILURE_RATE": 150}, "resilience.E007", "percentage"),
        ({"SLOW_CALL_RATE": 0}, "resilience.E007", "percentage"),
        ({"SLOW_CALL_DURATION": -1}, "resilience.E007", "positive"),
        ({"WINDOW": 0}, "resilience.E007", "from 1 to 3600"),
        ({"MINIMUM_CALLS": 0}, "resilience.E007", ">= 1"),
        ({"SUCCESS_THRESHOLD": 0}, "resilience.E003", ">= 1"),
        ({"SUCCESS_THRESHOLD": 3}, "resilience.W007", "closing takes 3 recovery windows"),
        (
            {"FAILURE_THRESHOLD": None, "FAILURE_RATE": None, "SLOW_CALL_RATE": None},
            "resilience.W006",
            "nothing opens the breaker",
        ),
        ({"SLOW_CALL_RATE": 50, "SLOW_CALL_DURATION": 2.0}, "resilience.W008", "times out"),
        ({"FAILURE_RATE_THRESHOLD": 50}, "resilience.E018", "Use FAILURE_RATE"),
        ({"RECORD_EXCEPTIONS": ["x.Y"]}, "resilience.E018", "Use RECORD"),
        ({"OPEN_BACKOFF_MULTIPLIER": 0.5}, "resilience.E008", ">= 1"),
        ({"MAX_RECOVERY_TIMEOUT": 5}, "resilience.E008", "shorter than"),
        ({"RECORD": ["no.such.Error"]}, "resilience.E009", "cannot be imported"),
        ({"IGNORE": ["os.path.sep"]}, "resilience.E009", "neither an exception class"),
        ({"IGNORE": [dict]}, "resilience.E009", "not an exception class"),
        ({"RECORD": "builtins.KeyError"}, "resilience.E009", "not a list"),
        (
            {"STORE": "resilience.stores.CacheStore", "STORE_OPTIONS": {"CACHE_ALIAS": "nope"}},
            "resilience.E010",
            "not in settings.CACHES",
        ),
        (
            {"STORE": "resilience.stores.CacheStore", "STORE_OPTIONS": {"SUCCESS_INTERVAL": -1}},
            "resilience.E010",
            "0 or a positive number",
        ),
        ({"BREAKERS": {"questdb": 5}}, "resilience.E011", "must be a dict"),
        ({"BREAKERS": {"questdb": {"FAILURE_THRESHOLD": -1}}}, "resilience.E001", "['questdb']"),
        ({"FAILURE_TRESHOLD": 3}, "resilience.W001", "Did you mean 'FAILURE_THRESHOLD'?"),
    ],
)
def test_checks_say_what_is_wrong_and_how_to_fix_it(settings, overrides, expected_id, words):
    settings.RESILIENCE = {**settings.RESILIENCE, **overrides}
    messages = check_settings()
    matching = [m for m in messages if m.id == expected_id]
    assert matching, [(m.id, m.msg) for m in messages]
    text = " ".join(f"{m.msg} {m.hint or ''}" for m in matching)
    assert words in text


def test_threshold_check_names_the_environment_variable(settings):
    settings.RESILIENCE = {"FAILURE_THRESHOLD": 0}
    (message,) = [m for m in check_settings() if m.id == "resilience.E001"]
    assert "RESILIENCE_FAILURE_THRESHOLD" in message.hint
    assert "the default is 5" in message.hint


def test_cache_store_on_a_process_local_cache_is_a_warning(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.RESILIENCE = {"STORE": "resilience.stores.CacheStore"}
    assert ids(check_settings()) == ["resilience.W002"]


@pytest.mark.parametrize(
    ("backend", "check_id", "says"),
    [
        ("django.core.cache.backends.filebased.FileBasedCache", "resilience.E014", "atomically"),
        ("django.core.cache.backends.dummy.DummyCache", "resilience.E014", "stores nothing"),
        ("django.core.cache.backends.locmem.LocMemCache", "resilience.W002", "cannot see"),
    ],
)
def test_a_cache_that_cannot_share_or_count_is_refused_for_the_shared_store(
    settings, tmp_path, backend, check_id, says
):
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": str(tmp_path)}}
    settings.RESILIENCE = {"STORE": "resilience.stores.CacheStore"}
    (message,) = check_settings()
    assert message.id == check_id and says in message.msg
    assert "DatabaseCache" in message.hint  # and it says which caches can


def test_the_database_cache_is_accepted_for_the_shared_store(settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "t"}
    }
    settings.RESILIENCE = {"STORE": "resilience.stores.CacheStore"}
    assert check_settings() == []


def test_default_store_is_local(settings):
    settings.RESILIENCE = {}
    assert isinstance(get_breaker("questdb").store, LocalStore)
    assert get_breaker("questdb").name == "questdb"
    assert set(DEFAULTS) >= {"FAILURE_THRESHOLD", "STORE", "BREAKERS", "CALL_DEADLINE"}


def test_success_interval_0_is_the_strict_consecutive_and_allowed(settings):
    """README: SUCCESS_INTERVAL 0 tells every success at once; the check must not refuse it."""
    settings.RESILIENCE = {
        **settings.RESILIENCE,
        "STORE": "resilience.stores.CacheStore",
        "STORE_OPTIONS": {"SUCCESS_INTERVAL": 0},
    }
    assert not [m for m in check_settings() if m.id == "resilience.E010"]
