"""The questdash project; its Celery app loads with Django (Celery's Django convention)."""

from .celery import app as celery_app

__all__ = ["celery_app"]
