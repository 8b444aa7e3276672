"""No tables: the breaker page's entry in the admin, and its permissions."""

from django.db import models


class CircuitBreaker(models.Model):
    """A breaker as the admin sees it. State lives in the breaker's store, not here."""

    name = models.CharField(max_length=100, primary_key=True)

    class Meta:
        managed = False
        default_permissions = ("view",)
        permissions = [
            ("control_circuitbreaker", "Can reset, force open or force close circuit breakers"),
        ]
        verbose_name = "circuit breaker"

    def __str__(self) -> str:
        return self.name
