"""Sending runs' training tasks to the workers, and sending again the ones that were lost."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from experiments_app import broker
from experiments_app.models import Run
from experiments_app.services import notify

logger = logging.getLogger(__name__)

NO_BROKER = (
    "no broker to queue the run on: REDIS_URL is unset and no `make run` of this checkout is running on this "
    "database, so no worker would ever see the run. Start `make run` (or set REDIS_URL to your workers' Redis) "
    "and launch again."
)
BROKER_DOWN = (
    "the broker (Redis) is not answering, so nothing was queued: start it again (`make run` starts one; "
    "/healthz shows what is down) and retry."
)


def run_enqueue(*, run: Run) -> None:
    """Queue the run's training task once the current transaction commits (a worker must find
    the run when it starts). Raises ValidationError unless a broker is known (NO_BROKER: the run
    would stay queued forever) and answers (BROKER_DOWN). A task the broker refuses after the
    commit (it went down meanwhile) leaves the run queued with no task: ``run_requeue_lost``
    sends it again once the broker answers."""
    if not broker.known():
        raise ValidationError(NO_BROKER)
    if not broker.answers():
        raise ValidationError(BROKER_DOWN, code="broker_down")
    task_id = str(uuid.uuid4())
    now = timezone.now()
    Run.objects.filter(pk=run.pk).update(task_id=task_id, queued_at=now)
    run.task_id, run.queued_at = task_id, now
    transaction.on_commit(lambda: _send_task(run.pk, task_id))


def _send_task(run_id: int, task_id: str) -> None:
    """Send the task; if the broker refuses it, mark the run as waiting with no task."""
    if broker.send_training_task(run_id=run_id, task_id=task_id):
        return
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id, task_id=task_id, status=Run.Status.QUEUED).first()
        if run is not None:
            run.task_id = ""
            run.save(update_fields=["task_id"])
            notify.run_changed(run=run)


def run_requeue_lost(*, now: datetime | None = None) -> list[int]:
    """Send again, and return the ids of, the queued runs whose task is gone: never sent (the
    broker refused it), or sent more than LOST_TASK_AFTER_S ago and no longer held by the
    broker (it lost its data). Nothing while the broker does not answer. Each run gets a new
    task id, taken with a conditional update, so that processes sweeping at once send it once.
    A task that was not lost after all (read between the broker's queue and its unacknowledged
    set) makes two: the first to arrive trains the run; ``run_claim`` refuses the other while it
    runs and once it is final, and one that arrives after the run was interrupted resumes it."""
    now = now or timezone.now()
    queued = Run.objects.filter(status=Run.Status.QUEUED, stop_requested=False)
    never_sent = Q(task_id="", queued_at__isnull=False)  # (runs created unqueued have no queued_at)
    old = Q(queued_at__lt=now - timedelta(seconds=settings.LOST_TASK_AFTER_S))
    candidates = list(queued.filter(never_sent | old).values_list("pk", "task_id"))
    if not candidates or not broker.known() or not broker.answers():
        return []
    held = broker.held_task_ids() if any(task_id for _, task_id in candidates) else set()
    lost = [(pk, task_id) for pk, task_id in candidates if not task_id or (held is not None and task_id not in held)]
    requeued = []
    for pk, task_id in lost:
        new_id = str(uuid.uuid4())
        if queued.filter(pk=pk, task_id=task_id).update(task_id=new_id, queued_at=now):
            if broker.send_training_task(run_id=pk, task_id=new_id):
                requeued.append(pk)
            else:
                queued.filter(pk=pk, task_id=new_id).update(task_id="")
                break  # the broker is down again: the next sweep tries
    for run in Run.objects.filter(pk__in=requeued):
        notify.run_changed(run=run)
    return requeued

