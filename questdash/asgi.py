"""ASGI entry point: `uvicorn questdash.asgi:application` (one worker or several).

Under ASGI the event loop only moves requests: the views and the QuestDB
engine are synchronous and run in Django's threads, and resilience's
middleware keeps whatever may wait on the shared store off the loop. So a
hung QuestDB or a paused Redis holds the requests that need them, within
their budgets, and nothing else (tests/test_asgi.py).

Python's warnings become log lines, JSON like the rest (under ASGI, Django
warns once that WhiteNoise's files are read from a synchronous iterator).
Run uvicorn with `--log-level warning --no-access-log`: its own lines are
plain text.
"""

import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "questdash.settings")
logging.captureWarnings(True)
application = get_asgi_application()
