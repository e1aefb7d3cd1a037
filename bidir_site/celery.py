"""The Celery app. Configuration comes from Django settings (``CELERY_*``): late acks, one task
prefetched at a time, JSON only."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bidir_site.settings")

app = Celery("bidir")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
)
app.autodiscover_tasks(["workers"])
