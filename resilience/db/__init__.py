"""Guarded database aliases: Django's database backends behind the breaker, retry and deadline.

``backends/postgresql`` is Django's PostgreSQL engine with every connect and
statement guarded (``guard.GuardedDatabaseMixin``, which any psycopg-based
engine can mix in, as questdash's QuestDB engine does); ``router.py`` sends
reads to a replica while its breaker lets calls through, and to the primary
while it is open. ``watchdog.py`` and ``connect.py`` hold connects and
statements to their budget on the client side, whatever the server does.
"""
