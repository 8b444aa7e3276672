"""The fleet's settings (the product's, on the test ports) with the floor view's URL."""

from tests.fleet_settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.floor.urls"
