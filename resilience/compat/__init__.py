"""APIs of other breaker libraries on resilience's breaker, so their users can move over.

``resilience.compat.pybreaker``: pybreaker 1.4's ``CircuitBreaker``, listeners and
storages; ``CircuitRedisStorage`` is resilience's shared store underneath.
"""
