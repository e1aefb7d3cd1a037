"""End to end in headless Chromium against `scripts/run_local.py` (what `make run` starts):
Redis, daphne and a Celery worker on a temporary SQLite database. Logs in, launches a tiny
real run through the form, watches it live, stops another, and checks that Ctrl-C stops
every child. Skipped where Chromium is not installed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.run_local import Services, free_port
from tests.browser import chromium, logged_in_page, needs_chromium, screenshot
from tests.web.helpers import PASSWORD
from workers.models import SMOLLM2

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240), needs_chromium]


LAUNCHER = [sys.executable, str(ROOT / "scripts" / "run_local.py")]


def stack_env(tmp: Path) -> dict[str, str]:
    """The environment of a `run_local.py` stack whose database and runs are in ``tmp``."""
    return {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY"}},
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "BIDIR_RUNS_DIR": str(tmp / "runs"),
        "DEBUG": "1",
    }


def add_login(tmp: Path, username: str, *options: str) -> None:
    """A login (password PASSWORD) in the database of the stack in ``tmp``, made as `make user` makes one."""
    subprocess.run([*LAUNCHER, "user", username, *options, "--password-stdin"],
                   input=PASSWORD + "\n", text=True, env=stack_env(tmp), check=True, cwd=ROOT, capture_output=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """(base URL, launcher process, its log path) of a running `run_local.py`, with the login
    "tester", admin of the team "Testers"."""
    tmp = tmp_path_factory.mktemp("stack")
    port = free_port()
    env = {**stack_env(tmp), "PORT": str(port)}
    add_login(tmp, "tester", "--team", "Testers")
    log = tmp / "launcher.log"
    with log.open("w") as out:
        process = subprocess.Popen(LAUNCHER, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "bidir dashboard:" not in log.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.3)
    yield f"http://127.0.0.1:{port}", process, log
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=90)
    Services(env).queue_file().unlink(missing_ok=True)  # the launcher's Redis queue, kept in var/


@pytest.fixture(scope="module")
def page(stack):
    base, _, _ = stack
    with chromium() as browser:
        yield logged_in_page(browser, base, "tester")


def launch(page, base: str, name: str, total_timesteps: int, mode: str = "ppo", **choices: str) -> None:
    """Launch one seed from the form; ``choices``: other select fields by id ("env_id", "hp_guidance_kind")."""
    page.goto(base + "/experiments/new/")
    page.click("details.advanced > summary")  # the hyperparameters are folded under it
    page.fill("#id_name", name)
    page.select_option("#id_mode", mode)
    for field, value in choices.items():
        page.select_option(f"#id_{field}", value)
    # The smallest teacher: these tests watch the page, not the teacher, and the default one's
    # warm-up and calls take minutes on a loaded 2-core machine.
    page.select_option("#id_teacher_model", SMOLLM2)
    page.fill("#id_seeds", "0")
    for field, value in {"total_timesteps": total_timesteps, "n_envs": 2, "n_steps": 64, "batch_size": 64,
                         "n_epochs": 1, "eval_interval": 0, "eval_episodes": 2, "policy": None}.items():
        if value is not None:
            page.fill(f"#id_hp_{field}", str(value))
    page.select_option("#id_hp_policy", "mlp")
    page.click("#launch-button")
    page.wait_for_url("**/runs/*/")


def test_healthz_is_green(stack, page):
    base, _, _ = stack
    # The URL is printed once the web server listens; the worker may still be starting.
    deadline = time.monotonic() + 60
    while not (body := page.request.get(base + "/healthz").json())["ok"] and time.monotonic() < deadline:
        time.sleep(1)
    assert body["ok"], body


def test_a_launched_run_is_watched_live_to_the_end(stack, page):
    base, _, _ = stack
    launch(page, base, '<img src=x onerror="window.pwned=1">', 1024)
    page.wait_for_function("document.getElementById('connection').textContent === 'live'", timeout=15000)
    page.wait_for_function("document.getElementById('status').textContent === 'succeeded'", timeout=120000)
    assert page.text_content("h1").startswith('<img src=x onerror="window.pwned=1">'), "names are shown as text"
    assert page.evaluate("window.pwned") is None
    points = page.evaluate("document.getElementById('chart-return').data.map(t => t.x.length)")
    assert points[0] >= 4 and points[1] >= 1, "training and evaluation returns are charted"
    assert page.evaluate("document.getElementById('chart-fps').data[0].x.length") >= 4
    assert page.text_content("#progress-text") == "1024 / 1024 frames"
    assert page.is_disabled("#stop-button") and page.is_visible("#summary")
    # The rollout canvas was drawn from frames: its pixels are not all background.
    painted = page.evaluate("""(() => { const c = document.getElementById('rollout');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 90) n++; return n; })()""")
    assert painted > 100
    screenshot(page, "run-finished.png")
    page.reload()
    page.wait_for_function("document.getElementById('chart-return').data[0].x.length >= 4", timeout=15000)
    assert page.errors == []


def test_a_subgoal_run_shows_the_plan_under_the_hint(stack, page):
    base, _, _ = stack
    launch(page, base, "subgoals", 1024, "oracle", env_id="BabyAI-UnlockLocal-v0", hp_guidance_kind="subgoals")
    page.wait_for_function("!document.getElementById('plan').hidden && "
                           "document.getElementById('plan-state').textContent.startsWith('Mission: open the door.')",
                           timeout=120000)
    page.wait_for_function("document.getElementById('status').textContent === 'succeeded'", timeout=120000)
    assert page.text_content("#plan-subgoal") and page.text_content("#plan-reached")
    assert "guided by subgoals" in page.inner_text("main"), "the run's header says the guidance kind"
    screenshot(page, "run-subgoals.png")
    assert page.errors == []


def test_stop_button_cancels_a_running_run(stack, page):
    base, _, _ = stack
    launch(page, base, "to be stopped", 2_000_000, mode="bidirectional")
    page.wait_for_function("document.getElementById('status').textContent === 'running'", timeout=60000)
    # The teacher's hint arrives live: the LLM's situation text and its action distribution.
    page.wait_for_function("document.getElementById('situation').textContent.startsWith('Your mission')", timeout=90000)
    assert page.locator("#distribution > *").count() == 3
    # Teacher accuracy is a curve from the first rollouts, each point saying on how many probe states.
    page.wait_for_function("document.getElementById('chart-teacher').data[0].x.length >= 2", timeout=60000)
    assert page.evaluate("document.getElementById('chart-teacher').data[0].text[0]").endswith(" of 200 probe states")
    screenshot(page, "run-live-bidirectional.png")
    page.click("#stop-button")
    page.wait_for_function("document.getElementById('status').textContent === 'cancelled'", timeout=60000)
    assert page.is_disabled("#stop-button")


def test_ctrl_c_stops_every_child(stack, page):
    _, process, log = stack
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 3, "redis, worker and web server"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=90) == 0, log.read_text()[-3000:]
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
