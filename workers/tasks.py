"""Celery task that trains one web-app run. The only module in ``workers`` that touches Django,
and only inside the task and the worker's signal handlers: the engine stays Django-free."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

from celery import shared_task
from celery.exceptions import Reject
from celery.signals import worker_ready, worker_shutting_down

logger = logging.getLogger(__name__)

_worker_shutting_down = threading.Event()
"""Set when the worker begins a warm shutdown: the running run stops at its next rollout
boundary with a checkpoint and is marked interrupted (resumable), not cancelled."""


@worker_shutting_down.connect
def _on_worker_shutting_down(**_: object) -> None:
    _worker_shutting_down.set()


@worker_ready.connect
def _on_worker_ready(sender: object = None, **_: object) -> None:
    """A worker that just started runs nothing, so runs still marked running on it (it died
    mid-run under the same node name) are interrupted now, without waiting for their heartbeat
    to go stale. Then the process sweeps stale runs of any worker (``experiments_app.sweeper``)."""
    from experiments_app.services import run_mark_interrupted
    from experiments_app.sweeper import start_stale_run_sweeper

    hostname = getattr(sender, "hostname", None)
    interrupted = run_mark_interrupted(worker_host=hostname) if hostname else []
    if interrupted:
        logger.warning("runs %s were left running by this worker's previous life: marked interrupted", interrupted)
    start_stale_run_sweeper()


@shared_task(bind=True, name="workers.tasks.train_run", acks_late=True, ignore_result=True)
def train_run(self, run_id: int) -> str:
    """Train run ``run_id`` to its end and return its final status, "refused" when the run
    may not start here (see ``services.run_claim``), or "superseded" when a newer attempt took
    it over mid-run (this worker had been presumed dead). Continues from the run's checkpoint when
    it has one, e.g. after its worker died. A run stopped by its worker's shutdown is
    requeued (the task is rejected with requeue), so it continues when a worker starts again."""
    from django.db import connection

    from experiments_app import services
    from experiments_app.hyperparameters import run_config
    from experiments_app.models import Run
    from experiments_app.sink import DatabaseSink
    from workers.engine import train

    # The worker's node name (name@host): on restart the worker recognises its own runs.
    worker_host = self.request.hostname or socket.gethostname()
    run = services.run_claim(run_id=run_id, worker_host=worker_host, task_id=self.request.id or "")
    if run is None:
        logger.info("run %s is not claimable (running elsewhere, finished or cancelled): skipped", run_id)
        return "refused"
    try:
        experiment = run.experiment
        config = run_config(
            env_id=experiment.env_id,
            mode=experiment.mode,
            teacher_model=experiment.teacher_model,
            seed=run.seed,
            hyperparameters=experiment.hyperparameters,
        )
        resume = bool(run.checkpoint_path) and Path(run.checkpoint_path).exists()
        if not resume and run.last_seq:
            services.run_discard_events(run=run)
        sink = DatabaseSink(run.pk, attempt=run.attempt)
        train(
            config,
            sink,
            out_dir=services.run_out_dir(run=run),
            should_stop=lambda: _worker_shutting_down.is_set() or sink.should_stop(),
            resume=resume,
            last_seq=run.last_seq if resume else None,
        )
    except services.RunClaimLost:
        # This worker was frozen long enough to be presumed dead and the run was resumed
        # elsewhere: the newer attempt owns the run, its status and its checkpoint.
        logger.warning("run %s: attempt %s superseded by a newer attempt; stopped", run.pk, run.attempt)
        connection.close()
        return "superseded"
    except Exception as exc:
        # The engine reports its own failures as run_failed; this covers the rest (a stored
        # config the engine rejects, a database error) and is a no-op for a final run.
        logger.exception("run %s failed", run.pk)
        services.run_fail(run_id=run.pk, error=f"{type(exc).__name__}: {exc}")
    try:
        status = Run.objects.values_list("status", flat=True).get(pk=run.pk)
    finally:
        connection.close()
    if status == Run.Status.INTERRUPTED and _worker_shutting_down.is_set():
        # Back to the queue: the next worker to start continues the run from its checkpoint.
        raise Reject("worker shutting down: run checkpointed, requeued", requeue=True)
    return status
