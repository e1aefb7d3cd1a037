"""The stale-run sweeper: a daemon thread that marks interrupted (resumable) every running run
whose heartbeat is older than ``STALE_AFTER_S`` (its worker died), and queues again every queued
run whose task is lost (``services.run_requeue_lost``), every ``STALE_SWEEP_S`` seconds. Each Celery worker and each web (ASGI) process runs one, so a run never stays
"running" forever, also while no worker is alive; the watchers of such a run see it change
live. One indexed query per sweep; concurrent sweeps are safe (``run_mark_interrupted`` locks
the rows it changes)."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_thread: threading.Thread | None = None


def start_stale_run_sweeper() -> bool:
    """Start this process's sweeper unless ``STALE_SWEEP_S`` is 0 or it already runs; True if
    it started now."""
    global _thread
    interval_s = float(settings.STALE_SWEEP_S)
    if interval_s <= 0:
        return False
    with _lock:
        if _thread is not None and _thread.is_alive():
            return False
        _thread = threading.Thread(target=_sweep_forever, args=(interval_s,), name="stale-run-sweeper", daemon=True)
        _thread.start()
    return True


def sweep_stale_runs() -> list[int]:
    """One sweep: the ids of the runs it marked interrupted. Never raises for a database error
    (logged; the next sweep tries again on a fresh connection)."""
    from experiments_app.services import run_mark_interrupted, run_requeue_lost

    close_old_connections()
    try:
        interrupted = run_mark_interrupted()
        requeued = run_requeue_lost()
    except DatabaseError:
        logger.warning("stale-run sweep failed", exc_info=True)
        connection.close()
        return []
    if interrupted:
        logger.warning("runs %s lost their worker (stale heartbeat): marked interrupted", interrupted)
    if requeued:
        logger.warning("runs %s had no task in the broker: queued again", requeued)
    return interrupted


def _sweep_forever(interval_s: float) -> None:
    while True:  # a daemon thread: it ends with its process
        sweep_stale_runs()
        time.sleep(interval_s)
