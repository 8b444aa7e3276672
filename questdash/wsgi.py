"""WSGI entry point: `gunicorn questdash.wsgi:application`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "questdash.settings")
application = get_wsgi_application()
