"""Worker faults against a real stack (Redis, daphne, Celery workers as ``make run`` starts
them): a worker killed with SIGKILL mid-run while no other worker is alive, a worker frozen
(SIGSTOP) long enough to be presumed dead that wakes up again, a task the broker delivers
twice, and the whole stack stopped mid-run and started again."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from celery import Celery

from tests.stack import ROLLOUT, TINY_RUN, Session, Stack, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(420)]

LONG = {**TINY_RUN, "frame_interval_s": 0.5, "total_timesteps": 10_000 * ROLLOUT}
"""Tiny rollouts (many events, quickly), and longer than any test: each test stops its run
(the Stop action) once it has seen what it checks, whatever the machine's speed."""


def stop(stack: Stack, session: Session, run_id: int) -> dict:
    """The run once the Stop action ended it (at its next rollout boundary)."""
    status, _, _ = session.post(f"/runs/{run_id}/stop/", {})
    assert status == 302
    wait_until(lambda: stack.run(run_id)["status"] not in ("queued", "running"), 120, f"run stopped\n{stack.logs_tail()}")
    return stack.run(run_id)


def test_a_killed_worker_loses_nothing_its_run_is_interrupted_within_30s_and_resumes_from_its_checkpoint(
        stack: Stack, report) -> None:
    stack.start_all(workers=1)
    session = Session(stack.base)
    # Oracle mode: hints as well as metrics, and no LLM.
    run_id = session.launch("killed mid-run", "oracle", stack.team_id(), checkpoint_interval=3, hint_interval_s=0.2, **LONG)

    def worth_killing() -> bool:
        events = stack.stored_events(run_id)
        return (stack.run(run_id)["checkpoint_path"] != "" and sum(e[1] == "metrics" for e in events) >= 4
                and any(e[1] == "hint" for e in events))

    wait_until(worth_killing, 180, f"a checkpoint, 4 metrics and a hint stored\n{stack.logs_tail()}")
    stack.stop("worker:w1", signal.SIGKILL)
    killed_at = time.monotonic()
    before = stack.stored_events(run_id)
    run_before = stack.run(run_id)
    checkpoint = stack.checkpoint_state(run_id)
    assert run_before["status"] == "running"

    # No worker is alive: the web process's sweeper must notice the silent heartbeat.
    wait_until(lambda: stack.run(run_id)["status"] == "interrupted", 40, f"run interrupted\n{stack.logs_tail()}")
    interrupted_s = time.monotonic() - killed_at
    assert interrupted_s < 30
    wait_until(lambda: "lost their worker" in stack.log("web"), 10, "the web process says it marked the run")
    assert stack.stored_events(run_id) == before, "every metric and hint stored before the kill is still there"

    stack.start_worker("w2")
    status, location, _ = session.post(f"/runs/{run_id}/resume/", {})
    assert status == 302 and location == f"/runs/{run_id}/"
    resumed_at = time.monotonic()
    wait_until(lambda: sum(e[1] == "progress" for e in stack.stored_events(run_id)[len(before):]) >= 2, 120,
               f"2 rollouts after Resume\n{stack.logs_tail()}")
    continued_s = time.monotonic() - resumed_at
    run = stop(stack, session, run_id)
    assert run["status"] == "cancelled", run["error"]

    after = stack.stored_events(run_id)
    kept = [e for e in before if e[0] <= checkpoint["last_seq"]]
    assert after[: len(kept)] == kept, "the first attempt's events up to its checkpoint are kept as they were"
    resumed = after[len(kept):]
    seqs = [e[0] for e in after]
    assert seqs == sorted(set(seqs)), "seq strictly increasing over all stored events"
    assert min(e[0] for e in resumed) > run_before["last_seq"], "no sequence number is used twice"
    progress = [e[2] for e in resumed if e[1] == "progress"]
    assert progress == list(range(checkpoint["timesteps"] + ROLLOUT, run["timesteps"] + 1, ROLLOUT)), \
        "continues from the last checkpoint, every rollout once"
    for kind in ("progress", "metrics"):
        timesteps = [e[2] for e in after if e[1] == kind]
        assert timesteps == sorted(set(timesteps)), f"one {kind} point per timestep: the crashed attempt's redone ones are gone"
    redone = sum(1 for e in before if e[1] == "progress" and e[2] > checkpoint["timesteps"])
    report(f"SIGKILL at {run_before['timesteps']} frames ({sum(e[1] == 'metrics' for e in before)} metrics, "
           f"{sum(e[1] == 'hint' for e in before)} hints, last seq {run_before['last_seq']} stored): marked interrupted "
           f"after {interrupted_s:.1f} s by the web process (no worker alive); all {len(before)} stored events intact; "
           f"resumed from the checkpoint at {checkpoint['timesteps']} frames ({redone} rollout(s) redone, their "
           f"{len(before) - len(kept)} stored events forgotten: one point per timestep), first new seq "
           f"{resumed[0][0]} (last stored {run_before['last_seq']}), 2 rollouts {continued_s:.1f} s after Resume; "
           f"stopped at {run['timesteps']} frames with {len(after)} stored events, seq strictly increasing, every rollout "
           f"from the checkpoint on once")


def _progress_by_attempt(stack: Stack, run_id: int, after_seq: int) -> list[int]:
    return [e[2] for e in stack.stored_events(run_id) if e[1] == "progress" and e[0] > after_seq]


def test_a_frozen_worker_takes_its_run_back_if_nobody_resumed_it_and_writes_nothing_if_someone_did(
        stack: Stack, report) -> None:
    stack.start_all(workers=1)
    session = Session(stack.base)
    run_id = session.launch("frozen worker", "oracle", stack.team_id(), checkpoint_interval=3, **LONG)
    wait_until(lambda: stack.run(run_id)["checkpoint_path"] != "", 180, f"a checkpoint\n{stack.logs_tail()}")
    frozen = stack.processes["worker:w1"]

    # Frozen past the stale limit, then woken: nobody took the run over, so it trains on.
    os.killpg(frozen.pid, signal.SIGSTOP)
    wait_until(lambda: stack.run(run_id)["status"] == "interrupted", 40, f"run interrupted\n{stack.logs_tail()}")
    seq_at_wake = stack.run(run_id)["last_seq"]
    os.killpg(frozen.pid, signal.SIGCONT)
    back_s = wait_until(lambda: stack.run(run_id)["status"] == "running" and _progress_by_attempt(stack, run_id, seq_at_wake),
                        30, f"the woken worker trains on\n{stack.logs_tail()}")
    assert stack.run(run_id)["attempt"] == 1

    # Frozen again, and this time the user resumes the run on another worker before it wakes.
    os.killpg(frozen.pid, signal.SIGSTOP)
    wait_until(lambda: stack.run(run_id)["status"] == "interrupted", 40, f"run interrupted\n{stack.logs_tail()}")
    interrupted = stack.run(run_id)
    checkpoint = stack.checkpoint_state(run_id)
    stack.start_worker("w2")
    status, _, _ = session.post(f"/runs/{run_id}/resume/", {})
    assert status == 302
    wait_until(lambda: len(_progress_by_attempt(stack, run_id, interrupted["last_seq"])) >= 2, 120,
               f"2 rollouts on w2\n{stack.logs_tail()}")
    assert stack.run(run_id)["attempt"] == 2
    os.killpg(frozen.pid, signal.SIGCONT)
    superseded_s = wait_until(lambda: "'superseded'" in stack.log("worker:w1"), 30,
                              f"the woken worker gives up the run\n{stack.logs_tail()}")
    seq_after_wake = stack.run(run_id)["last_seq"]
    wait_until(lambda: stack.run(run_id)["last_seq"] > seq_after_wake + 4, 60, f"w2 trains on\n{stack.logs_tail()}")
    run = stop(stack, Session(stack.base), run_id)
    assert run["status"] == "cancelled" and run["worker_host"].startswith("w2@"), run

    resumed = _progress_by_attempt(stack, run_id, interrupted["last_seq"])
    assert resumed == list(range(checkpoint["timesteps"] + ROLLOUT, run["timesteps"] + 1, ROLLOUT)), \
        "after the resume only w2's rollouts are stored, each once: the woken worker wrote nothing"
    assert stack.checkpoint_state(run_id)["timesteps"] == run["timesteps"], "the checkpoint is w2's last"
    report(f"SIGSTOP past the 20 s stale limit then SIGCONT: the worker took its run back in {back_s:.1f} s; frozen "
           f"again and resumed on w2, then woken: it gave the run up in {superseded_s:.1f} s and wrote nothing "
           f"({len(resumed)} rollouts stored after the resume, all w2's)")


def _task_results(stack: Stack, task_id: str) -> dict[str, str]:
    """What each worker's log says the task returned, by worker."""
    pattern = re.compile(rf"train_run\[{re.escape(task_id)}\] succeeded in [\d.]+s: '(\w+)'")
    return {name: m.group(1) for name in stack.processes if name.startswith("worker:")
            for m in pattern.finditer(stack.log(name))}


def test_a_task_delivered_twice_trains_its_run_once(stack: Stack, report) -> None:
    stack.start_redis()
    stack.start_web(stack.web_port)
    session = Session(stack.base)
    run_id = session.launch("delivered twice", "ppo", stack.team_id(), checkpoint_interval=0, **LONG)
    task_id = stack.run(run_id)["task_id"]
    # The broker's redelivery (an unacknowledged task past its visibility timeout): the same
    # task, same id, queued again while no worker has taken the first delivery yet.
    broker = Celery(broker=stack.env["REDIS_URL"], set_as_current=False)
    broker.send_task("workers.tasks.train_run", args=[run_id], task_id=task_id)
    broker.close()
    started = time.monotonic()
    stack.start_worker("w1")
    stack.start_worker("w2")

    wait_until(lambda: "refused" in _task_results(stack, task_id).values(), 120, f"one delivery refused\n{stack.logs_tail()}")
    refused_s = time.monotonic() - started
    status_at_refusal = stack.run(run_id)["status"]
    assert status_at_refusal == "running", "refused while the other delivery was training the run"
    wait_until(lambda: sum(e[1] == "progress" for e in stack.stored_events(run_id)) >= 2, 120,
               f"2 rollouts trained\n{stack.logs_tail()}")
    run = stop(stack, session, run_id)
    wait_until(lambda: len(_task_results(stack, task_id)) == 2, 60, f"both deliveries done\n{stack.logs_tail()}")
    results = _task_results(stack, task_id)
    assert sorted(results.values()) == ["cancelled", "refused"], results
    trained_by = next(name for name, result in results.items() if result == "cancelled")
    assert run["worker_host"].split("@")[0] == trained_by.split(":")[1]
    progress = [e[2] for e in stack.stored_events(run_id) if e[1] == "progress"]
    assert progress == list(range(ROLLOUT, run["timesteps"] + 1, ROLLOUT)), "every rollout stored once"
    report(f"two deliveries of task {task_id[:8]}… to two workers: {results}; the refusal came "
           f"{refused_s:.1f} s after the workers started, while the run was {status_at_refusal}; "
           f"{len(progress)} rollouts stored once each")


def test_a_run_stopped_with_its_worker_continues_when_everything_starts_again(stack: Stack, report) -> None:
    """``make run``'s Ctrl-C, then ``make run`` again: the worker stops its run at a rollout
    boundary with a checkpoint and requeues its task; Redis keeps the queue in its append-only
    file, so the next worker continues the run by itself."""
    stack.start_all(workers=1)
    session = Session(stack.base)
    run_id = session.launch("stopped with everything", "ppo", stack.team_id(), checkpoint_interval=0, **LONG)
    wait_until(lambda: sum(e[1] == "progress" for e in stack.stored_events(run_id)) >= 2, 180,
               f"2 rollouts\n{stack.logs_tail()}")
    stack.stop("web")
    stack.stop("worker:w1")
    stopped = stack.run(run_id)
    assert stopped["status"] == "interrupted" and stopped["checkpoint_path"], stopped
    port = stack.redis_port()
    stack.stop("redis")

    stack.start_redis(port)
    stack.start_worker("w1")
    restarted_at = time.monotonic()
    continued_s = wait_until(lambda: stack.run(run_id)["timesteps"] > stopped["timesteps"], 120,
                             f"the run continues by itself\n{stack.logs_tail()}")
    stack.start_web(stack.web_port)
    run = stop(stack, Session(stack.base), run_id)
    progress = [e[2] for e in stack.stored_events(run_id) if e[1] == "progress"]
    assert progress == list(range(ROLLOUT, run["timesteps"] + 1, ROLLOUT)), "from its checkpoint, every rollout once"
    report(f"stopped (SIGINT) at {stopped['timesteps']} frames, checkpointed and requeued; Redis stopped and started "
           f"again: the new worker continued the run {continued_s:.1f} s after it started "
           f"({time.monotonic() - restarted_at:.0f} s until stopped at {run['timesteps']} frames, every rollout once)")
