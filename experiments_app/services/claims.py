"""Which worker trains a run: claims as numbered attempts, heartbeats, and what happens to runs
whose worker went silent. Every write of a worker names its attempt (``_claim_updates``), so
one that was presumed dead and wakes up writes nothing over a newer attempt's."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from experiments_app.models import Hint, Metric, MetricRollup, Run
from experiments_app.services import notify

logger = logging.getLogger(__name__)


def _stale_before(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.STALE_AFTER_S)


@transaction.atomic
def run_claim(*, run_id: int, worker_host: str, task_id: str) -> Run | None:
    """Mark the run running on this worker as a new attempt and return it, or return None when
    it must not run here: already running elsewhere with a fresh heartbeat (a redelivered task),
    finished, cancelled, or gone. Atomic, so two deliveries of one task never both win. The
    returned run's ``attempt`` is what the worker passes to ``run_record_events`` and
    ``run_heartbeat``: an earlier attempt that is still alive (a frozen worker that wakes up)
    can no longer write."""
    now = timezone.now()
    claimable = (
        Q(status__in=[Run.Status.QUEUED, Run.Status.INTERRUPTED])
        | Q(status=Run.Status.RUNNING, heartbeat_at__lt=_stale_before(now))
    )
    won = (
        Run.objects.filter(claimable, pk=run_id, stop_requested=False)
        .update(
            status=Run.Status.RUNNING,
            worker_host=worker_host[:200],
            task_id=task_id,
            attempt=F("attempt") + 1,
            heartbeat_at=now,
            error="",
        )
    )
    if not won:
        return None
    Run.objects.filter(pk=run_id, started_at__isnull=True).update(started_at=now)
    run = Run.objects.select_related("experiment").get(pk=run_id)
    notify.run_changed(run=run)
    return run


@transaction.atomic
def run_discard_events(*, run: Run) -> None:
    """Forget what an attempt without a checkpoint recorded, before training starts over (its
    numbers start at 1 again)."""
    Metric.objects.filter(run=run).delete()
    MetricRollup.objects.filter(run=run).delete()
    Hint.objects.filter(run=run).delete()
    Run.objects.filter(pk=run.pk).update(
        last_seq=0, timesteps=0, fps=None, eta_s=None, teacher_fault="", summary=None, final_eval_return=None,
        rewound_attempt=run.attempt,
    )
    run.last_seq = 0
    notify.run_changed(run=Run.objects.get(pk=run.pk))  # pages showing the old events reload


class RunClaimLost(Exception):
    """The run is no longer the writer's attempt: it was queued again, claimed by a newer
    attempt, made final or deleted while the writer's worker was frozen."""


def _claim_updates(run: Run, attempt: int) -> dict[str, Any]:
    """The fields that keep ``run`` with ``attempt`` (on a row the caller has locked), or
    RunClaimLost. A run marked interrupted for a stale heartbeat and not queued again since is
    taken back: its worker was frozen, not dead, and goes on where it was."""
    if run.attempt != attempt or run.status not in (Run.Status.RUNNING, Run.Status.INTERRUPTED):
        raise RunClaimLost(f"run {run.pk} is not held by attempt {attempt} any more (attempt {run.attempt}, {run.status})")
    if run.status == Run.Status.INTERRUPTED:
        logger.warning("run %s: its worker is alive after all; running again", run.pk)
        return {"status": Run.Status.RUNNING, "error": ""}
    return {}


def run_heartbeat(*, run_id: int, attempt: int | None) -> bool:
    """Refresh the heartbeat of ``attempt`` (None: of whichever attempt runs it); False if the
    run is no longer that attempt's to train (see ``RunClaimLost``). One UPDATE while the run
    is running as it should be."""
    now = timezone.now()
    running = Run.objects.filter(pk=run_id, status=Run.Status.RUNNING)
    if running.filter(**({} if attempt is None else {"attempt": attempt})).update(heartbeat_at=now):
        return True
    if attempt is None:
        return False
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            return False
        try:
            updates = {**_claim_updates(run, attempt), "heartbeat_at": now}
        except RunClaimLost:
            return False
        for name, value in updates.items():
            setattr(run, name, value)
        run.save(update_fields=list(updates))
        notify.run_changed(run=run)
    return True


@transaction.atomic
def run_fail(*, run_id: int, error: str) -> None:
    """Record a failure the engine could not report itself; a run already final keeps its status."""
    run = Run.objects.select_for_update().get(pk=run_id)
    if run.is_final:
        return
    run.status = Run.Status.FAILED
    run.error = error
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
    notify.run_changed(run=run)


def run_mark_interrupted(*, worker_host: str | None = None, now: datetime | None = None) -> list[int]:
    """Mark interrupted (resumable) and return the ids of the runs that lost their worker:
    running runs whose heartbeat is older than STALE_AFTER_S, or, given ``worker_host``, every
    running run of that worker (which has just started, so it runs none of them)."""
    now = now or timezone.now()
    lost = Q(worker_host=worker_host) if worker_host else Q(heartbeat_at__lt=_stale_before(now))
    # Every process sweeps every few seconds: look before taking any lock.
    if not Run.objects.filter(lost, status=Run.Status.RUNNING).exists():
        return []
    with transaction.atomic():
        ids = list(Run.objects.select_for_update().filter(lost, status=Run.Status.RUNNING).values_list("pk", flat=True))
        Run.objects.filter(pk__in=ids).update(status=Run.Status.INTERRUPTED, error="the worker running it stopped")
        for run in Run.objects.filter(pk__in=ids):
            notify.run_changed(run=run)
    return ids
