"""Broker faults between a launch and a worker, against a real stack (Redis, daphne, a Celery
worker as ``make run`` starts them): Redis loses its data while a run waits in the queue, and
Redis is down when a user launches."""

from __future__ import annotations

import time

import pytest
import redis

from tests.stack import ROLLOUT, TINY_RUN, Session, Stack, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

RUN = {**TINY_RUN, "frame_interval_s": 0.5, "total_timesteps": 10_000 * ROLLOUT}


def test_a_task_redis_lost_is_queued_again_and_a_launch_while_redis_is_down_says_so(stack: Stack, report) -> None:
    stack.env["BIDIR_LOST_TASK_AFTER_S"] = "3"
    port = int(stack.start_redis().rsplit(":", 1)[1].split("/")[0])
    stack.start_web(stack.web_port)  # no worker yet: the task waits in Redis
    session = Session(stack.base)
    run_id = session.launch("lost task", "ppo", stack.team_id(), **RUN)
    first_task = stack.run(run_id)["task_id"]
    with redis.Redis.from_url(stack.env["REDIS_URL"]) as client:
        assert client.llen("celery") == 1
        client.flushall()  # as a Redis without persistence that restarted
    flushed_at = time.monotonic()
    wait_until(lambda: stack.run(run_id)["task_id"] != first_task, 30,
               f"the web process queued the run again\n{stack.logs_tail()}")
    requeued_s = time.monotonic() - flushed_at
    with redis.Redis.from_url(stack.env["REDIS_URL"]) as client:
        assert client.llen("celery") == 1, "one task again"
    stack.start_worker("w1")
    wait_until(lambda: stack.run(run_id)["status"] == "running", 120, f"the run starts\n{stack.logs_tail()}")
    status, _, _ = session.post(f"/runs/{run_id}/stop/", {})
    assert status == 302
    wait_until(lambda: stack.run(run_id)["status"] == "cancelled", 120, f"run stopped\n{stack.logs_tail()}")

    stack.stop("redis")
    runs_before = len(stack.query("SELECT id FROM experiments_app_run"))
    started = time.monotonic()
    try:
        session.launch("while redis is down", "ppo", stack.team_id(), **RUN)
    except AssertionError as refused:
        message = str(refused)
    else:
        raise AssertionError("a launch with Redis down was accepted")
    refused_s = time.monotonic() - started
    assert "(503)" in message and "is not answering, so nothing was queued" in message, message
    assert len(stack.query("SELECT id FROM experiments_app_run")) == runs_before, "nothing created"
    stack.start_redis(port)
    report(f"Redis flushed with a run queued and no worker up: the web process sent its task again "
           f"{requeued_s:.1f} s later (BIDIR_LOST_TASK_AFTER_S=3), and the run started once a worker came up; "
           f"a launch with Redis stopped was refused in {refused_s:.1f} s with a 503 saying so, nothing created")
