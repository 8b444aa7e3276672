"""The Celery app "questdash", by Celery's Django conventions.

`celery -A questdash worker -B` runs a worker with beat in one process tree.
Settings come from Django's, under the ``CELERY_`` namespace. The broker is
Redis when ``REDIS_URL`` is set, and otherwise kombu's filesystem transport
under ``VAR_DIR`` so that the local demo needs no Redis at all.
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "questdash.settings")

app = Celery("questdash")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# kombu's filesystem transport wants its folders to exist already.
FILESYSTEM_FOLDERS = ("data_folder_in", "data_folder_out", "control_folder", "processed_folder")


@app.on_after_configure.connect
def make_broker_folders(sender: Celery, **kwargs) -> None:
    if not str(sender.conf.broker_url or "").startswith("filesystem:"):
        return
    options = sender.conf.broker_transport_options or {}
    for key in FILESYSTEM_FOLDERS:
        if folder := options.get(key):
            Path(folder).mkdir(parents=True, exist_ok=True)
