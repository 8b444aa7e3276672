"""The story's naive design, for the "before" column of benchmarks/outage_latency.py.

tenacity retry around each dashboard read (3 attempts, waits of 100, 500 and
1000 ms, connection errors only), no circuit breaker, no deadline, and the
QuestDB dialect without the engine's guard: psycopg's own connect timeout
(whole seconds, at least 2) and the server's statement_timeout, nothing on
the client side. The last good copies and the envelope stay as they are, so
the two columns differ only in how QuestDB is called.

Use it as an app and an engine: ``benchmarks.naive.settings`` does both.
"""
