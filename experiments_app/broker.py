"""What the web app asks of the Celery broker that carries the runs' training tasks: whether
there is one a worker can reach, whether it answers, sending a task, and which tasks it holds.

A task can be lost between a launch and a worker: the broker is down when the launch commits,
or it loses its data (a Redis without persistence restarts). ``services.run_requeue_lost``
finds such runs with ``held_task_ids`` and queues them again."""

from __future__ import annotations

import json
import logging

from django.conf import settings

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0


def known() -> bool:
    """Whether a queued task can reach a worker: not through an in-process broker (``memory://``,
    what settings fall back to without REDIS_URL or a running ``make run``)."""
    return not settings.CELERY_BROKER_URL.startswith("memory://")


def check(*, timeout_s: float = CHECK_TIMEOUT_S) -> str:
    """The broker's URI (password masked) once it accepts a connection within ``timeout_s``;
    raises kombu's error if it does not."""
    from bidir_site.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout_s)
        return conn.as_uri()


def answers() -> bool:
    """Whether the broker accepts a connection within CHECK_TIMEOUT_S (``check``)."""
    try:
        check()
        return True
    except Exception:
        logger.warning("the broker is not answering", exc_info=True)
        return False


def send_training_task(*, run_id: int, task_id: str) -> bool:
    """Send run ``run_id``'s training task; False (logged) if the broker refused it."""
    from workers.tasks import train_run

    try:
        train_run.apply_async(args=[run_id], task_id=task_id)
        return True
    except Exception:
        logger.warning("could not queue run %s's task %s", run_id, task_id, exc_info=True)
        return False


def held_task_ids() -> set[str] | None:
    """The ids of the tasks the broker holds for a worker: waiting in the default queue, or
    delivered and not yet acknowledged (tasks are acknowledged when they end). None when it
    cannot say: a broker other than Redis, or one that does not answer."""
    from bidir_site.celery import app

    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_S)
            channel = conn.default_channel
            if not hasattr(channel, "unacked_key"):  # kombu's Redis transport only
                return None
            client, queue = channel.client, app.conf.task_default_queue
            ids = set()
            for priority in channel.priority_steps:
                for raw in client.lrange(channel._q_for_pri(queue, priority), 0, -1):
                    ids.add(json.loads(raw)["headers"]["id"])
            for raw in client.hvals(channel.unacked_key):
                ids.add(json.loads(raw)[0]["headers"]["id"])
            return ids
    except Exception:
        logger.warning("could not read the broker's tasks", exc_info=True)
        return None
