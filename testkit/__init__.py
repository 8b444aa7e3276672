"""Test helpers shared by the test suites (``tests/``, ``resilience/tests/``) and ``benchmarks/``.

Real services, started and stopped by the helpers, never stubs:

- ``ports``: a free port on the loopback interface;
- ``processes``: pausing a process (SIGSTOP until every thread is stopped), ending one;
- ``redis_server``: Debian's redis-server on a free port, stopped, restarted, paused;
- ``questdb``: the real QuestDB, run by questdash's own ``manage.py questdb`` commands;
- ``toxiproxy``: a real Toxiproxy server and its proxies (network faults);
- ``postgres``: Debian's PostgreSQL, a cluster of our own (initdb, pg_ctl), stopped,
  paused; guarded aliases to it and reads through the replica router;
- ``tcp_servers``: a server that hangs and one that resets, each in its own process;
- ``fleet``: the questdash site on gunicorn with several workers, staff clients, the hangs;
- ``redis_worker``: real processes, each with breakers on one shared Redis store;
- ``simulated``: a fleet of simulated processes on one faulty cache, for model tests.

Only the standard library at import (the site's workers import ``testkit.fleet``),
and nothing from questdash except in ``questdb`` (the app's own suite never imports it).
The package is not shipped in the app's wheel.
"""
