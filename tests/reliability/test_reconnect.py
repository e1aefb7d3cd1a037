"""Live pages across faults, in headless Chromium against a real stack: Redis (broker and
channel layer) losing its data, hanging and restarting mid-run, and the web server restarted
while two browsers watch. Training goes on; every page reconnects (or re-syncs), back-fills
from the database and ends with exactly the database's points: no gap, no duplicate."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
import redis

from tests.browser import logged_in_page, needs_chromium
from tests.stack import PASSWORD, USERNAME, Session, Stack, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.browser, needs_chromium, pytest.mark.timeout(420)]

ROLLOUT = 128
RUN = {"n_envs": 2, "n_steps": ROLLOUT // 2, "batch_size": 64, "n_epochs": 1, "policy": "mlp", "eval_interval": 0,
       "eval_episodes": 2, "checkpoint_interval": 0, "frame_interval_s": 0.1, "total_timesteps": 1000 * ROLLOUT}
"""Longer than any test: each test stops its run (the Stop action) once its faults are over,
so that what it checks does not depend on the machine's speed."""
OUTAGE_S = 2.0
IDLE_S = 12.0
"""More than twice the channel layer's 5 s blocking read, which once dropped idle sockets."""

POINTS = """() => ({return: document.getElementById('chart-return').data[0].x.slice(),
                    fps: document.getElementById('chart-fps').data[0].x.slice()})"""


def open_run_page(browser: Any, stack: Stack, run_id: int) -> Any:
    """The run's page, live; ``page.sockets`` counts the WebSockets it opened."""
    page = logged_in_page(browser, stack.base, USERNAME, PASSWORD)
    page.sockets = []
    page.on("websocket", lambda ws: page.sockets.append(ws))
    page.goto(f"{stack.base}/runs/{run_id}/")
    page.wait_for_function("document.getElementById('connection').textContent === 'live'", timeout=30000)
    return page


def connection(page: Any) -> str:
    return page.text_content("#connection")


def wait_for_points(stack: Stack, pages: list[Any], minimum: int) -> None:
    wait_until(lambda: all(len(p.evaluate(POINTS)["fps"]) >= minimum for p in pages), 180,
               f"{minimum} points on every page\n{stack.logs_tail()}")


def stop_and_catch_up(stack: Stack, session: Session, pages: list[Any], run_id: int) -> float:
    """Stop the run (it ends at its next rollout boundary); the seconds from its end until
    every page shows exactly the database's points and the run's final state."""
    status, _, _ = session.post(f"/runs/{run_id}/stop/", {})
    assert status == 302
    wait_until(lambda: stack.run(run_id)["status"] != "running", 120, f"run stopped\n{stack.logs_tail()}")
    run = stack.run(run_id)
    assert run["status"] == "cancelled", run["error"]
    stored = stack.chart_points(run_id)
    caught_up_s = wait_until(lambda: all(p.evaluate(POINTS) == stored for p in pages), 60,
                             f"pages show the stored points {stored}: {[p.evaluate(POINTS) for p in pages]}")
    for page in pages:
        page.wait_for_function("document.getElementById('status').textContent === 'cancelled'", timeout=10000)
        assert page.text_content("#progress-text") == f"{run['timesteps']} / {RUN['total_timesteps']} frames"
    return caught_up_s


def test_redis_losing_its_data_hanging_and_restarting_mid_run_loses_no_point(stack: Stack, browser: Any, report) -> None:
    """Three Redis faults in one run: it loses its data while the page stays connected (the
    run's group forgets the page's socket: nothing live reaches it any more); it stops
    answering (SIGSTOP: a hung server or a network partition, where nothing fails fast); it
    restarts empty, as a Redis without persistence comes back. Training goes on through all."""
    stack.start_all()
    session = Session(stack.base)
    run_id = session.launch("redis faults", "ppo", stack.team_id(), **RUN)
    page = open_run_page(browser, stack, run_id)
    wait_for_points(stack, [page], 3)

    with redis.Redis.from_url(stack.env["REDIS_URL"]) as client:
        client.flushall()
    stored_at_flush = len(stack.chart_points(run_id)["fps"])
    resynced_s = wait_until(lambda: len(page.evaluate(POINTS)["fps"]) > stored_at_flush + 1, 60,
                            f"the page gets points stored after the flush\n{stack.logs_tail()}")

    def rollouts_during(fault_s: float) -> int:
        before = len(stack.chart_points(run_id)["fps"])
        time.sleep(fault_s)
        return len(stack.chart_points(run_id)["fps"]) - before

    stack.processes["redis"].send_signal(signal.SIGSTOP)
    try:
        stored_during_hang = rollouts_during(2 * OUTAGE_S)
    finally:
        stack.processes["redis"].send_signal(signal.SIGCONT)

    port = stack.redis_port()
    stack.stop("redis", signal.SIGTERM, timeout_s=20)
    for path in stack.var.iterdir():  # its append-only file: it comes back empty
        path.unlink()
    stored_at_outage = len(stack.chart_points(run_id)["fps"])
    stored_during_outage = rollouts_during(OUTAGE_S)
    stack.start_redis(port)
    assert stack.run(run_id)["status"] == "running", "the run survived the outage"

    caught_up_s = stop_and_catch_up(stack, session, [page], run_id)
    points = page.evaluate(POINTS)
    assert len(set(points["fps"])) == len(points["fps"]), "no duplicate point"
    assert stored_during_hang > 0, "training went on while Redis hung"
    assert stored_during_outage > 0, "training went on while Redis was down"
    report(f"Redis flushed at rollout {stored_at_flush}: the connected page had later points again {resynced_s:.1f} s "
           f"after; Redis hung {2 * OUTAGE_S:g} s: {stored_during_hang} rollouts stored meanwhile; Redis down {OUTAGE_S:g} s "
           f"at rollout {stored_at_outage} and back empty: {stored_during_outage} rollouts stored meanwhile; after Stop "
           f"the page (WebSockets opened: {len(page.sockets)}) showed all {len(points['fps'])} fps and "
           f"{len(points['return'])} return points, none twice, {caught_up_s:.1f} s after the run ended")


def test_browsers_reconnect_and_catch_up_after_a_web_server_restart(stack: Stack, browser: Any, report) -> None:
    stack.start_all()
    session = Session(stack.base)
    run_id = session.launch("web server restart", "ppo", stack.team_id(), **RUN)
    pages = [open_run_page(browser, stack, run_id) for _ in range(2)]
    wait_for_points(stack, pages, 3)

    stack.stop("web", signal.SIGTERM, timeout_s=20)
    wait_until(lambda: all(connection(p) == "reconnecting…" for p in pages), 15, "pages notice the lost connection")
    time.sleep(OUTAGE_S)
    stored_while_down = len(stack.chart_points(run_id)["fps"])
    stack.start_web(stack.web_port)
    reconnect_s = wait_until(lambda: all(connection(p) == "live" for p in pages), 60, "pages live again")
    caught_up_s = stop_and_catch_up(stack, session, pages, run_id)
    points = [p.evaluate(POINTS) for p in pages]
    assert all(len(set(p["fps"])) == len(p["fps"]) for p in points), "no duplicate point"

    # The run is over: nothing more is sent, and the pages keep their connections all the same.
    sockets = [len(p.sockets) for p in pages]
    time.sleep(IDLE_S)
    assert [len(p.sockets) for p in pages] == sockets and all(connection(p) == "live" for p in pages), \
        "an idle page is not disconnected"
    report(f"web server down {OUTAGE_S:g} s + its restart, {stored_while_down} rollouts stored by then: both pages live again "
           f"{reconnect_s:.1f} s after it listened (WebSockets opened: {[len(p.sockets) for p in pages]}), each with all "
           f"{len(points[0]['fps'])} fps points, none twice, {caught_up_s:.1f} s after the run ended; then idle "
           f"{IDLE_S:g} s without a reconnect")
