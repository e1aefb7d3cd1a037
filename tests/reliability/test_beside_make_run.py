"""The README's ``manage.py launch`` beside a running ``make run`` (``scripts/run_local.py``
itself, on the stack fixture's database): with neither REDIS_URL nor DEBUG set, the launch
finds the launcher's Redis and DEBUG through its ``var/`` file and its worker trains the run;
once ``make run`` has stopped, the same launch is refused, saying why, and nothing is created."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from bidir_site.local_stack import stack_file, stack_running
from scripts.run_local import ROOT, Services
from tests.stack import TEAM, USERNAME, Stack, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(360)]

TINY = ["total_timesteps=256", "n_envs=2", "n_steps=64", "batch_size=64", "n_epochs=1", "policy=mlp",
        "eval_interval=0", "eval_episodes=2"]


def launch(database_url: str, name: str, **extra_env: str) -> subprocess.CompletedProcess:
    """The README's command, in a shell that sets only the database (the stack's) and
    ``extra_env``."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"REDIS_URL", "DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
    command = [sys.executable, "manage.py", "launch", "--name", name, "--team", TEAM, "--user", USERNAME,
               "--env", "BabyAI-GoToRedBallNoDists-v0", "--mode", "ppo", "--seeds", "0",
               *[arg for pair in TINY for arg in ("--set", pair)]]
    return subprocess.run(command, cwd=ROOT, env={**env, "DATABASE_URL": database_url, **extra_env},
                          capture_output=True, text=True, timeout=120)


def test_launch_beside_make_run_trains_and_without_it_refuses(stack: Stack) -> None:
    database_url = stack.env["DATABASE_URL"]
    env = {**stack.env, "PORT": str(stack.web_port)}
    env.pop("REDIS_URL", None)
    log = stack.log_dir / "launcher.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        launcher = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "run_local.py")], env=env, cwd=ROOT,
                                    stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "bidir dashboard:" in log.read_text() or launcher.poll() is not None, 120, "make run is up")
        assert launcher.poll() is None, log.read_text()[-3000:]
        recorded = stack_running(database_url=database_url)
        assert recorded is not None and recorded["pid"] == launcher.pid and recorded["redis_url"].startswith("redis://")

        result = launch(database_url, "beside make run")
        assert result.returncode == 0, result.stderr
        run_id = int(result.stdout.split()[0])
        wait_until(lambda: stack.run(run_id)["status"] != "queued", 120,
                   f"the run leaves the queue\n{log.read_text()[-3000:]}")
        wait_until(lambda: stack.run(run_id)["status"] not in ("queued", "running"), 180,
                   f"the run ends\n{log.read_text()[-3000:]}")
        assert stack.run(run_id)["status"] == "succeeded", stack.run(run_id)["error"]
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGINT)
            launcher.wait(timeout=90)
        Services(env).queue_file().unlink(missing_ok=True)  # the launcher's Redis queue, kept in var/
    assert not stack_file(database_url=database_url).exists(), "make run removes its file when it stops"

    experiments = stack.query("SELECT count(*) FROM experiments_app_experiment")[0][0]
    result = launch(database_url, "no make run")
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr, "production settings again"
    result = launch(database_url, "no make run", DEBUG="1")
    assert result.returncode != 0 and "no broker to queue the run on" in result.stderr, result.stderr
    assert stack.query("SELECT count(*) FROM experiments_app_experiment")[0][0] == experiments, "nothing created"

