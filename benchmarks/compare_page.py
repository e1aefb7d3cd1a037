#!/usr/bin/env python
"""How fast the compare page is on a big database: builds a throwaway SQLite database with
``--runs`` finished runs of ``--points`` METRICS rows each (plain SQL inserts, then the
product's rollups), then measures

* the server's response time (Django test client, in process: no network) and payload size of
  the compare page and of its JSON, for all the runs at once and for one experiment's seeds;
* with ``--browser`` (Chromium: $BIDIR_CHROMIUM, or Debian's /usr/bin/chromium), first
  contentful paint and the time until both charts are drawn, in headless Chromium against
  ``manage.py runserver`` on 127.0.0.1.

    .venv/bin/python benchmarks/compare_page.py                      # 100 runs x 1,000 points
    .venv/bin/python benchmarks/compare_page.py --points 100000 --browser --db /tmp/cmp.sqlite3

``--db`` keeps the database at that path and reuses it when it exists: filling 100 runs x
100,000 points takes minutes.

Target: first paint under 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEEDS_PER_EXPERIMENT = 10


def chromium_path() -> str:
    """The Chromium ``--browser`` drives: $BIDIR_CHROMIUM, else the one the study's figure
    export finds (Debian's /usr/bin/chromium, any Chrome/Chromium on PATH); SystemExit saying
    how to get one where there is none."""
    sys.path.insert(0, str(ROOT))  # (run as a script: its own folder is on the path, not the project)
    from study.chrome import chrome_path

    path = os.environ.get("BIDIR_CHROMIUM") or chrome_path()
    if not path or not Path(path).is_file():
        raise SystemExit("--browser needs Chromium: install Debian's chromium package or set BIDIR_CHROMIUM=/path/to/chrome")
    return path


def setup_django(db_path: Path) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "bidir_site.settings_test"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()  # lets the test client use "testserver" as host
    call_command("migrate", verbosity=0)


def populate(n_runs: int, points: int) -> tuple[object, list[int]]:
    """A user, its team, n_runs / 10 experiments of 10 finished seeds, ``points`` METRICS rows a
    run (a noisy rising return), inserted with plain SQL (the fastest way to fill this
    throwaway database), then rolled up by the product's own ``metric_rollups_refresh``, as
    ``run_record_events`` does when a run stores its events. Returns the user and the
    experiment ids."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from experiments_app import services
    from experiments_app.hyperparameters import hyperparameter_defaults
    from experiments_app.models import Experiment, Metric, Run, Team
    from experiments_app.rollups import metric_rollups_refresh

    user = get_user_model().objects.create_user("bench", password="bench-password-123")
    team = Team.objects.create(name="bench")
    services.team_member_add(team=team, user=user, role="admin")
    rng = random.Random(0)
    experiment_ids = []
    insert = (
        f"INSERT INTO {Metric._meta.db_table} (run_id, seq, kind, timestep, time, mean_return, success_rate,"
        " teacher_accuracy, guidance_coef, fps, data) VALUES (%s, %s, 'metrics', %s, 0.0, %s, %s, NULL, %s, NULL, '{}')"
    )
    started = time.perf_counter()
    rollup_s = 0.0
    for e in range(max(1, n_runs // SEEDS_PER_EXPERIMENT)):
        experiment = Experiment.objects.create(
            name=f"experiment {e}", owner=user, team=team, env_id="BabyAI-GoToRedBallNoDists-v0", mode="ppo",
            hyperparameters={**hyperparameter_defaults(), "learning_rate": 1e-4 * (e + 1)},
        )
        experiment_ids.append(experiment.pk)
        for seed in range(SEEDS_PER_EXPERIMENT):
            final = rng.random()
            run = Run.objects.create(
                experiment=experiment, seed=seed, status=Run.Status.SUCCEEDED, timesteps=points * 1024,
                total_timesteps=points * 1024, final_eval_return=final, last_seq=points,
                summary={"final_eval_return": final, "frames_to_0_9": 1024 * points // 2, "teacher_accuracy_start": None,
                         "teacher_accuracy_end": None, "llm_calls": 0},
            )
            rate = rng.uniform(2, 6) / points
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(insert, [
                    (run.pk, i + 1, (i + 1) * 1024, min(1.0, max(0.0, 1 - 2.718 ** (-rate * i) + rng.gauss(0, 0.05))),
                     rng.random(), 1 - i / points)
                    for i in range(points)
                ])
                rolled = time.perf_counter()
                metric_rollups_refresh(run_id=run.pk, first_seq=1, last_seq=points)
                rollup_s += time.perf_counter() - rolled
    print(f"populated {n_runs} runs x {points} points in {time.perf_counter() - started:.0f} s "
          f"({rollup_s:.0f} s of it rolling up)")
    return user, experiment_ids


def measure_server(client, url: str, repeats: int = 5) -> tuple[float, float, int]:
    """(median s, min s, bytes) of GET url, after one warm-up."""
    client.get(url)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    return statistics.median(times), min(times), len(response.content)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def runserver(db_path: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """``manage.py runserver`` (DEBUG, daphne's, HTTP and WebSocket) on the database at
    ``db_path``, on a free port of 127.0.0.1: yields (port, process) once it accepts connections."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db_path}", "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "bidir_site.settings"}
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "runserver did not start"
                time.sleep(0.2)
        yield port, server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


def measure_browser(db_path: Path, session_id: str, paths: list[str], repeats: int = 3) -> dict[str, tuple[float, float]]:
    """{path: (median first contentful paint ms, median charts drawn ms)} in headless Chromium."""
    from playwright.sync_api import sync_playwright

    with runserver(db_path) as (port, _):
        results = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium_path(),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
            )
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_cookies([{"name": "sessionid", "value": session_id, "domain": "127.0.0.1", "path": "/"}])
            page = context.new_page()
            page.goto(f"http://127.0.0.1:{port}{paths[0]}")  # warm the static files cache once
            for path in paths:
                paints, drawn = [], []
                for _ in range(repeats):
                    page.goto(f"http://127.0.0.1:{port}{path}")
                    page.wait_for_function("document.body.dataset.drawn === '1'", timeout=60000)
                    paints.append(page.evaluate(
                        "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN"))
                    drawn.append(page.evaluate("performance.getEntriesByName('compare-drawn')[0].startTime"))
                results[path] = (statistics.median(paints), statistics.median(drawn))
            browser.close()
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--points", type=int, default=1000, help="METRICS rows per run")
    parser.add_argument("--browser", action="store_true", help="also measure paint times in headless Chromium")
    parser.add_argument("--db", type=Path, help="keep the database at this path; reuse it if it exists")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bidir-bench-") as tmp:
        db_path = args.db or Path(tmp) / "bench.sqlite3"
        reuse = db_path.exists()
        setup_django(db_path)
        from django.contrib.auth import get_user_model
        from django.test import Client

        from experiments_app.models import Experiment, Metric

        if reuse:
            user = get_user_model().objects.get(username="bench")
            experiment_ids = list(Experiment.objects.order_by("pk").values_list("pk", flat=True))
            print(f"reusing {db_path}: {len(experiment_ids) * SEEDS_PER_EXPERIMENT} runs, {Metric.objects.count()} points")
        else:
            user, experiment_ids = populate(args.runs, args.points)
        client = Client()
        client.force_login(user)
        ids = ",".join(map(str, experiment_ids))
        views = {
            f"all {args.runs} runs": f"/compare/?experiments={ids}&smoothing=0.6",
            f"1 experiment ({SEEDS_PER_EXPERIMENT} seeds)": f"/compare/?experiments={experiment_ids[0]}&smoothing=0.6",
        }
        print(f"{'view':<28} {'format':<6} {'median ms':>10} {'min ms':>8} {'KiB':>8}")
        for label, url in views.items():
            for fmt, suffix in (("html", ""), ("json", "&format=json")):
                median, best, size = measure_server(client, url + suffix)
                print(f"{label:<28} {fmt:<6} {median * 1000:>10.0f} {best * 1000:>8.0f} {size / 1024:>8.0f}")
        if args.browser:
            session_id = client.cookies["sessionid"].value
            paints = measure_browser(db_path, session_id, list(views.values()))
            print(f"\n{'view':<28} {'first contentful paint ms':>26} {'charts drawn ms':>16}")
            for label, url in views.items():
                fcp, drawn = paints[url]
                print(f"{label:<28} {fcp:>26.0f} {drawn:>16.0f}")


if __name__ == "__main__":
    main()
