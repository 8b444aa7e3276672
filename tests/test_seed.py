"""`manage.py questdb seed [--rows N]`: QuestDB generates the prices itself."""

from __future__ import annotations

import datetime

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, Max

from questdash import seed
from questdash.models import Price

pytestmark = [pytest.mark.usefixtures("questdb_server"), pytest.mark.django_db(databases="__all__")]


@pytest.fixture
def reseed_default():
    """Leave the demo data as the other tests expect it."""
    yield
    seed.seed()


def test_default_seed_prices_are_price_at_of_each_step():
    """QuestDB computes the same prices as price_at() of each row's time (the feed's too)."""
    for symbol in ("AAPL", "EURUSD", "BTC-USD"):
        rows = list(Price.objects.filter(symbol=symbol).order_by("ts").values_list("ts", "price"))
        assert len(rows) == seed.DEFAULT_PRICE_ROWS // len(seed.SYMBOLS)
        steps = [seed.step_of(ts) for ts, _ in rows]
        assert all(step == int(step) for step in steps)  # whole steps: 10-second boundaries
        assert steps == [steps[0] + i for i in range(len(steps))]  # no gap
        assert [price for _, price in rows] == [seed.price_at(symbol, int(s)) for s in steps]


@pytest.mark.usefixtures("reseed_default")
def test_rows_loads_exactly_n_prices_ending_now():
    result = seed.seed(rows=1_000_003)
    assert result.rows["prices"] == Price.objects.count() == 1_000_003
    per_symbol = Price.objects.values("symbol").annotate(n=Count("*"), last=Max("ts"))
    counts = sorted(row["n"] for row in per_symbol)
    assert len(counts) == len(seed.SYMBOLS) and counts[-1] - counts[0] <= 1
    now = datetime.datetime.now(datetime.UTC)
    for row in per_symbol:  # every symbol's newest price is at the seed's "now"
        assert now - row["last"] < datetime.timedelta(minutes=1)
    assert result.seconds < 30, result  # QuestDB generates them: no row crosses the wire


def test_rows_below_one_per_symbol_is_a_command_error():
    with pytest.raises(CommandError, match="at least 12"):
        call_command("questdb", "seed", "--rows", "5")
