#!/usr/bin/env python
"""Load: ``--runs`` real runs training at once and ``--viewers`` WebSocket viewers for at least
``--duration-s`` seconds, on a stack as ``make run`` starts it (Redis, daphne, Celery workers;
SQLite), all on 127.0.0.1. Meanwhile a logged-in client times the pages, one request at a time:
a run's page, the experiments and runs lists, and the JSON API. Then the runs are stopped (the
Stop action) and the database is checked.

    .venv/bin/python benchmarks/load.py        # 10 runs, 50 viewers, 60 s; writes benchmarks/results/load.txt

Runs: oracle mode (guided by the BabyAI bot: no LLM) with tiny rollouts, a hint event every
0.1 s and no live frames. Frames are never stored but take sequence numbers, so without them
every number must be accounted for: a run's stored metrics and hints, plus the three events
stored as the run's state (run_started; at its end a checkpoint and run_finished), must be
exactly 1..last_seq. The viewers (5 a run) receive each stored event live, as pages do.

Targets: no event lost in the database; page p95 under 500 ms during the load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.live_latency import connect  # noqa: E402
from tests.stack import Session, Stack, make_database, wait_until  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "load.txt"
ROLLOUT = 128
RUN = {"n_envs": 2, "n_steps": ROLLOUT // 2, "batch_size": 64, "n_epochs": 1, "policy": "mlp", "eval_interval": 0,
       "eval_episodes": 2, "checkpoint_interval": 0, "frame_interval_s": 0.0, "hint_interval_s": 0.1,
       "total_timesteps": 100_000 * ROLLOUT}
"""Longer than the load lasts: the runs are stopped at its end."""
TARGET_P95_S = 0.5


class Viewer:
    """A page's WebSocket: back-fills, then keeps the seq of every event it receives."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.ready = asyncio.get_running_loop().create_future()
        self.seqs: set[int] = set()
        self.messages = 0
        self.done = False
        self.dropped: list[str] = []
        """Close code and reason, if the server closed the connection before the end."""

    def receive(self, payload: bytes) -> None:
        message = json.loads(payload)
        self.messages += 1
        if message["type"] == "events":
            self.seqs.update(event["seq"] for event in message["events"])
        elif message.get("backfill") and not self.ready.done():
            self.ready.set_result(None)


def probe_pages(session: Session, paths: list[tuple[str, str]], stop: threading.Event) -> dict[str, list[float]]:
    """Until ``stop``: GET each path in turn, one at a time; seconds per request, by page kind.
    Anything but a 200 is an error."""
    timings: dict[str, list[float]] = {kind: [] for kind, _ in paths}
    while not stop.is_set():
        for kind, path in paths:
            started = time.monotonic()
            status, _, _ = session.get(path)
            timings[kind].append(time.monotonic() - started)
            if status != 200:
                raise RuntimeError(f"GET {path}: {status}")
            stop.wait(0.1)
    return timings


def percentiles(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return f"n={len(ms):4d}  p50 {q[49]:6.0f}  p95 {q[94]:6.0f}  max {ms[-1]:6.0f} ms"


def launch(stack: Stack, session: Session, runs: int) -> tuple[int, list[int]]:
    """One experiment of ``runs`` seeds, all running: (experiment id, run ids)."""
    first = session.launch("load", "oracle", stack.team_id(), seeds=f"0-{runs - 1}", **RUN)
    experiment_id = stack.run(first)["experiment_id"]
    run_ids = [row["id"] for row in stack.query(
        "SELECT id FROM experiments_app_run WHERE experiment_id = ? ORDER BY seed", experiment_id)]
    wait_until(lambda: all(stack.run(r)["status"] == "running" for r in run_ids), 180, f"all runs running\n{stack.logs_tail()}")
    return experiment_id, run_ids


async def load(stack: Stack, session: Session, experiment_id: int, run_ids: list[int], n_viewers: int,
               duration_s: float, paths: list[tuple[str, str]]) -> tuple[list[Viewer], dict[str, list[float]], float]:
    """Connect the viewers (viewer i watches run i mod runs) and wait for their back-fills;
    time the pages for ``duration_s``; stop the runs and wait for their end, then for the last
    live messages. (viewers, page timings, seconds of load)."""
    loop = asyncio.get_running_loop()
    session_id = next(c.value for c in session.cookies if c.name == "sessionid")
    started = time.monotonic()
    viewers = [Viewer(run_ids[i % len(run_ids)]) for i in range(n_viewers)]
    transports = [await connect(v, stack.web_port, v.run_id, session_id) for v in viewers]
    await asyncio.wait_for(asyncio.gather(*(v.ready for v in viewers)), 120)
    stop_probe = threading.Event()
    probe = loop.run_in_executor(None, probe_pages, Session(stack.base), paths, stop_probe)
    await asyncio.sleep(duration_s)
    stop_probe.set()
    timings = await asyncio.wait_for(probe, 60)
    loaded_s = time.monotonic() - started
    status, _, _ = session.post(f"/experiments/{experiment_id}/stop/", {})
    assert status == 302, status
    await loop.run_in_executor(None, lambda: wait_until(
        lambda: all(stack.run(r)["status"] not in ("queued", "running") for r in run_ids), 180,
        f"every run stopped\n{stack.logs_tail()}"))
    await asyncio.sleep(3)
    for viewer, transport in zip(viewers, transports):
        viewer.done = True
        transport.close()
    return viewers, timings, loaded_s


def unaccounted(stack: Stack, run_id: int) -> list[int]:
    """The seqs from 1 to the run's last that are neither a stored metric or hint nor one of
    the three events stored as the run's state: [] when no event was lost."""
    last_seq = stack.run(run_id)["last_seq"]
    stored = [e[0] for e in stack.stored_events(run_id)]
    return sorted(set(range(1, last_seq + 1)) - set(stored) - {1, last_seq - 1, last_seq})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (the runs are spread over them)")
    args = parser.parse_args()
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with tempfile.TemporaryDirectory(prefix="bidir-load-") as tmp:
        database = Path(tmp) / "template" / "db.sqlite3"
        database.parent.mkdir()
        make_database(database)
        (Path(tmp) / "stack").mkdir()
        stack = Stack(Path(tmp) / "stack", database)
        try:
            stack.start_redis()
            for i in range(args.workers):
                stack.start_worker(f"w{i + 1}", concurrency=math.ceil(args.runs / args.workers))
            stack.start_web(stack.web_port)
            session = Session(stack.base)
            experiment_id, run_ids = launch(stack, session, args.runs)
            first = run_ids[0]
            paths = [("run page", f"/runs/{first}/"), ("experiments list", "/"), ("runs list", "/runs/"),
                     ("API runs", "/api/runs/"), ("API run", f"/api/runs/{first}/"),
                     ("API metrics", f"/api/runs/{first}/metrics/")]
            viewers, timings, loaded_s = asyncio.run(
                load(stack, session, experiment_id, run_ids, args.viewers, args.duration_s, paths))

            say(f"{args.runs} runs (oracle mode, {ROLLOUT}-frame rollouts, a hint every 0.1 s), {args.viewers} WebSocket "
                f"viewers, {len(paths)} pages timed one request at a time, for {loaded_s:.0f} s; {args.workers} Celery "
                f"workers (threads pool), one daphne, SQLite, all on 127.0.0.1")
            stored = {r: {e[0] for e in stack.stored_events(r)} for r in run_ids}
            lost = {r: unaccounted(stack, r) for r in run_ids}
            statuses = sorted({stack.run(r)["status"] for r in run_ids})
            say(f"database: {sum(map(len, stored.values()))} events stored by {len(run_ids)} runs (now {statuses}); "
                f"every seq from 1 to each run's last accounted for: "
                + ("yes" if not any(lost.values()) else f"NO, missing {({r: s[:10] for r, s in lost.items() if s})}"))
            shares = [len(v.seqs & stored[v.run_id]) / max(1, len(stored[v.run_id])) for v in viewers]
            dropped = [reason for v in viewers for reason in v.dropped]
            say(f"viewers: {sum(v.messages for v in viewers)} messages; share of its run's stored events each viewer "
                f"received: min {min(shares):.3f}, mean {statistics.mean(shares):.3f}; connections the server dropped: "
                f"{len(dropped)}")
            for kind, values in timings.items():
                say(f"  {kind:17s} {percentiles(values)}")
            every = [t for values in timings.values() for t in values]
            p95 = statistics.quantiles(every, n=100, method="inclusive")[94]
            say(f"  {'all pages':17s} {percentiles(every)}: p95 {'under' if p95 < TARGET_P95_S else 'OVER'} the "
                f"{TARGET_P95_S * 1000:.0f} ms target")
            say("tracebacks in the stack's logs: " + ", ".join(f"{n} {stack.log(n).count('Traceback')}" for n in stack.processes))
        finally:
            stack.close()

    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
