"""QuestDB's demo tables as unmanaged, read-only models.

The router sends any model with `questdb_table = True` to the "questdb"
alias and never migrates it; the seed command owns the schema. Their
QuerySets add QuestDB's LATEST ON and SAMPLE BY (`latest_on()`,
`sample_by()`), which use the designated timestamp named here.
"""

from django.db import models

from questdash.db.backend.queryset import QuestDBQuerySet


class QuestDBModel(models.Model):
    questdb_table = True
    designated_timestamp = "ts"

    objects = QuestDBQuerySet.as_manager()

    class Meta:
        abstract = True
        managed = False


class TradingSession(QuestDBModel):
    """One row per lifecycle event; the newest per session_id is its state."""

    pk = models.CompositePrimaryKey("session_id", "ts")
    session_id = models.CharField(max_length=32)
    name = models.CharField(max_length=200)
    strategy = models.CharField(max_length=64)
    status = models.CharField(max_length=16)
    started_at = models.DateTimeField()
    ts = models.DateTimeField()

    class Meta(QuestDBModel.Meta):
        db_table = "trading_sessions"

    def __str__(self) -> str:
        return f"{self.session_id} {self.status} at {self.ts:%Y-%m-%d %H:%M:%S}"


class Price(QuestDBModel):
    pk = models.CompositePrimaryKey("symbol", "ts")
    symbol = models.CharField(max_length=32)
    price = models.FloatField()
    ts = models.DateTimeField()

    class Meta(QuestDBModel.Meta):
        db_table = "prices"

    def __str__(self) -> str:
        return f"{self.symbol} {self.price} at {self.ts:%Y-%m-%d %H:%M:%S}"


class Position(QuestDBModel):
    """One row per change; the newest per (session_id, symbol) is the position."""

    pk = models.CompositePrimaryKey("session_id", "symbol", "ts")
    session_id = models.CharField(max_length=32)
    symbol = models.CharField(max_length=32)
    quantity = models.FloatField()
    avg_price = models.FloatField()
    ts = models.DateTimeField()

    class Meta(QuestDBModel.Meta):
        db_table = "positions"

    def __str__(self) -> str:
        return f"{self.session_id} {self.symbol} {self.quantity:g} @ {self.avg_price:g}"


class Dashboard(models.Model):
    """No table: the dashboard's entry in the admin, and the permission to see it."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = verbose_name_plural = "QuestDB dashboard"

    def __str__(self) -> str:
        return str(self._meta.verbose_name)
