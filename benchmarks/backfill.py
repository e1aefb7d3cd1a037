#!/usr/bin/env python
"""What opening a long run's page costs: builds a throwaway SQLite database with one finished
run of ``--rows`` metric rows (per rollout a METRICS and a PROGRESS row, an EVALUATION every
10th rollout, a hint every 10th; plain SQL inserts, then the product's rollups), then measures

* in process (no network): the run page's HTML; the first WebSocket back-fill answer, as the
  page asks for it (``{"type": "backfill", "last_seq": 0}``), through the real consumer: its
  time, its bytes, the Python memory it allocated at its peak (tracemalloc) and the events it
  carried; and, for comparison, an unbounded read of every stored row after seq 0 (what the
  back-fill did before it was paged);
* with ``--browser`` (Chromium: $BIDIR_CHROMIUM, or Debian's /usr/bin/chromium): the time
  from navigation until the page says "live" (the back-fill applied and the charts drawn), in
  headless Chromium against ``manage.py runserver`` on 127.0.0.1, and the growth of that
  server's resident memory.

    .venv/bin/python benchmarks/backfill.py --db /tmp/backfill.sqlite3 --browser

``--db`` keeps the database at that path and reuses it when it exists. Target (issue 15): a
run of 1,000,000 metric rows paints in under 2 s, at a memory cost that does not grow with it.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from compare_page import ROOT, chromium_path, runserver, setup_django

def populate(rows: int) -> tuple[object, int]:
    """A user, its team and one succeeded run of about ``rows`` metric rows, as the engine
    reports them (a rising return, noisy fps), rolled up by the product's own refresh."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from experiments_app import services
    from experiments_app.hyperparameters import hyperparameter_defaults
    from experiments_app.models import Experiment, Hint, Metric, Run, Team
    from experiments_app.rollups import metric_rollups_refresh

    user = get_user_model().objects.create_user("bench", password="bench-password-123")
    team = Team.objects.create(name="bench")
    services.team_member_add(team=team, user=user, role="admin")
    experiment = Experiment.objects.create(
        name="a long run", owner=user, team=team, env_id="BabyAI-GoToRedBallNoDists-v0", mode="ppo",
        hyperparameters=hyperparameter_defaults(),
    )
    rollouts = rows * 10 // 21  # 2.1 metric rows a rollout
    run = Run.objects.create(experiment=experiment, seed=0, status=Run.Status.SUCCEEDED,
                             timesteps=rollouts * 512, total_timesteps=rollouts * 512)
    rng = random.Random(0)
    metric_rows, hint_rows, seq = [], [], 0
    for i in range(rollouts):
        t = 512 * (i + 1)
        value = min(1.0, max(0.0, 1 - 2.718 ** (-5 * i / rollouts) + rng.gauss(0, 0.05)))
        if i % 10 == 0:
            seq += 1
            hint_rows.append((run.pk, seq, t))
        seq += 1
        data = {"mean_return": value, "success_rate": value, "mean_length": 30.0, "episodes": 100, "policy_loss": 0.01,
                "value_loss": 0.02, "entropy": 1.2, "approx_kl": 0.01, "clip_fraction": 0.1, "guidance_loss": None,
                "guidance_coef": None, "teacher_accuracy": None, "teacher_accuracy_answered": 0, "probe_states": 0}
        metric_rows.append((run.pk, seq, "metrics", t, value, value, None, None, None, json.dumps(data)))
        seq += 1
        fps = 600 + rng.gauss(0, 30)
        data = {"timesteps": t, "total_timesteps": rollouts * 512, "fps": fps, "elapsed_s": t / 600, "eta_s": 0.0}
        metric_rows.append((run.pk, seq, "progress", t, None, None, fps, None, None, json.dumps(data)))
        if i % 10 == 0:
            seq += 1
            data = {"mean_return": value, "success_rate": value, "sampled_mean_return": value,
                    "sampled_success_rate": value, "mean_length": 20.0, "episodes": 20}
            metric_rows.append((run.pk, seq, "evaluation", t, value, value, None, value, value, json.dumps(data)))
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {Metric._meta.db_table} (run_id, seq, kind, timestep, time, mean_return, success_rate,"
            " fps, sampled_mean_return, sampled_success_rate, data, teacher_accuracy, guidance_coef)"
            " VALUES (%s, %s, %s, %s, 0.0, %s, %s, %s, %s, %s, %s, NULL, NULL)", metric_rows)
        cursor.executemany(
            f"INSERT INTO {Hint._meta.db_table} (run_id, seq, timestep, time, situation, situation_key, distribution,"
            " teacher_action, action_taken, feedback, weight, source) VALUES (%s, %s, %s, 0.0, 'You see a red ball"
            " ahead.', 'ball-ahead', '{\"forward\": 0.9, \"left\": 0.05, \"right\": 0.05}', 'forward', 'forward',"
            " NULL, 1.0, 'none')", hint_rows)
        inserted = time.perf_counter()
        metric_rollups_refresh(run_id=run.pk, first_seq=1, last_seq=seq)
        Run.objects.filter(pk=run.pk).update(last_seq=seq)
    print(f"populated 1 run of {len(metric_rows):,} metric rows and {len(hint_rows):,} hints (last seq {seq:,}) in "
          f"{time.perf_counter() - started:.0f} s ({time.perf_counter() - inserted:.0f} s of it rolling up)")
    return user, run.pk


def measure_backfill(user, run_id: int) -> dict[str, float]:
    """The first back-fill answer through the consumer (in-memory channel layer), traced."""
    from asgiref.sync import async_to_sync
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator

    from experiments_app.routing import websocket_urlpatterns

    async def exchange() -> tuple[int, int, int]:
        comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/runs/{run_id}/")
        comm.scope["user"] = user
        await comm.connect()
        await comm.send_json_to({"type": "backfill", "last_seq": 0})
        size = messages = events = 0
        while True:
            message = await comm.receive_output(timeout=60)
            text = message["text"]
            size, messages = size + len(text), messages + 1
            content = json.loads(text)
            events += len(content.get("events", []))
            if content.get("backfill"):
                break
        await comm.disconnect()
        return size, messages, events

    async_to_sync(exchange)()  # warm-up: imports, the database's page cache
    tracemalloc.start()
    started = time.perf_counter()
    size, messages, events = async_to_sync(exchange)()
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"s": elapsed, "bytes": size, "messages": messages, "events": events, "peak_bytes": peak}


def measure_unbounded(run_id: int) -> dict[str, float]:
    """Every stored metric row after seq 0 read at once, as the back-fill did before paging."""
    from experiments_app import selectors

    tracemalloc.start()
    started = time.perf_counter()
    events = selectors.run_metrics_since(run_id=run_id, after_seq=0)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"s": elapsed, "events": len(events), "peak_bytes": peak}


def measure_browser(db_path: Path, session_id: str, run_id: int, repeats: int = 3) -> dict[str, float]:
    """Median ms from navigation to "live" on the run page, and the server's RSS growth."""
    import psutil
    from playwright.sync_api import sync_playwright

    with runserver(db_path) as (port, server):
        process = psutil.Process(server.pid)
        url = f"http://127.0.0.1:{port}/runs/{run_id}/"
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium_path(),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
            )
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_cookies([{"name": "sessionid", "value": session_id, "domain": "127.0.0.1", "path": "/"}])
            page = context.new_page()
            page.goto(url)  # warm the static files cache once
            page.wait_for_function("document.getElementById('connection').textContent === 'live'", timeout=60000)
            rss_before = process.memory_info().rss
            times = []
            for _ in range(repeats):
                page.goto(url)
                page.wait_for_function("document.getElementById('connection').textContent === 'live'", timeout=60000)
                times.append(page.evaluate("performance.now()"))
            rss_after = process.memory_info().rss
            page.screenshot(path=str(ROOT / "test-artifacts" / "backfill-long-run.png"), full_page=True)
            browser.close()
        return {"live_ms": statistics.median(times), "rss_growth_bytes": rss_after - rss_before, "rss_bytes": rss_after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="metric rows of the run")
    parser.add_argument("--browser", action="store_true", help="also measure the page in headless Chromium")
    parser.add_argument("--db", type=Path, help="keep the database at this path; reuse it if it exists")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if args.browser:
        chromium_path()  # before filling a database: says how to get one where there is none

    with tempfile.TemporaryDirectory(prefix="bidir-bench-") as tmp:
        db_path = args.db or Path(tmp) / "bench.sqlite3"
        reuse = db_path.exists()
        setup_django(db_path)
        from django.contrib.auth import get_user_model
        from django.test import Client

        from experiments_app.models import Metric, Run

        if reuse:
            user = get_user_model().objects.get(username="bench")
            run_id = Run.objects.get().pk
            print(f"reusing {db_path}: 1 run of {Metric.objects.count():,} metric rows")
        else:
            user, run_id = populate(args.rows)
        client = Client()
        client.force_login(user)
        client.get(f"/runs/{run_id}/")
        started = time.perf_counter()
        html = client.get(f"/runs/{run_id}/")
        page_s = time.perf_counter() - started
        assert html.status_code == 200, html.status_code
        figures: dict[str, object] = {"metric_rows": Metric.objects.filter(run_id=run_id).count(),
                                      "run_page_html": {"s": page_s, "bytes": len(html.content)}}
        figures["first_backfill"] = backfill = measure_backfill(user, run_id)
        figures["unbounded_read"] = unbounded = measure_unbounded(run_id)
        print(f"run page HTML: {page_s * 1000:.0f} ms, {len(html.content) / 1024:.0f} KiB")
        print(f"first back-fill: {backfill['s'] * 1000:.0f} ms, {backfill['messages']} messages, "
              f"{backfill['bytes'] / 1024:.0f} KiB, {backfill['events']} events, "
              f"peak {backfill['peak_bytes'] / 2**20:.1f} MiB allocated")
        print(f"unbounded read (the back-fill before paging): {unbounded['s'] * 1000:.0f} ms, "
              f"{unbounded['events']:,} events, peak {unbounded['peak_bytes'] / 2**20:.0f} MiB allocated")
        if args.browser:
            (ROOT / "test-artifacts").mkdir(exist_ok=True)
            figures["browser"] = browser = measure_browser(db_path, client.cookies["sessionid"].value, run_id)
            print(f"browser: live (back-fill applied, charts drawn) {browser['live_ms']:.0f} ms after navigation; "
                  f"server RSS {browser['rss_bytes'] / 2**20:.0f} MiB, grew {browser['rss_growth_bytes'] / 2**20:.1f} MiB "
                  "over 3 page loads")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
