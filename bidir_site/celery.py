"""The Celery app. Configuration comes from Django settings (``CELERY_*``): late acks, one task
prefetched at a time, JSON only. A broker outage (Redis restarted) stops neither the worker nor
its run: the worker reconnects for as long as it takes, and the run trains on meanwhile (its
data goes to the database; a redelivered copy of its task is refused by ``run_claim``)."""

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
    broker_connection_retry=True,
    broker_connection_max_retries=None,  # retry forever: giving up would stop the worker and its run
    worker_cancel_long_running_tasks_on_connection_loss=False,
)
app.autodiscover_tasks(["workers"])
