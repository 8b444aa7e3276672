"""Settings of the gunicorn fleet (testkit/fleet.py): the site as a new user runs it.

The product's own settings, not tests.settings: that module shortens
RESILIENCE_CONNECT_TIMEOUT and RESILIENCE_QUERY_TIMEOUT for the in-process
tests, and the fleet must keep its promises with the defaults. The test
ports, password and Redis come from the environment (``Fleet.env``). Two
additions, neither on the timed path: each response names its worker, and
staff logins hash quickly.
"""

from questdash.settings import *  # noqa: F403

MIDDLEWARE = ["testkit.fleet.worker_pid_middleware", *MIDDLEWARE]  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
