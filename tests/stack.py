"""A real dashboard for the reliability tests and the load benchmark: ``Stack`` runs what
``make run`` starts (``scripts/run_local.py``'s Services: Redis, daphne, Celery workers) on a
temporary SQLite database, each process started, killed and restarted on demand, each logging
to its own file; it reads that database directly (the truth pages are checked against), and
``Session`` is a user logged in over HTTP (what a browser does, without one). No Django in
this process: the database is read with sqlite3, everything else goes through the site."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scripts.run_local import Services, free_port

ROOT = Path(__file__).resolve().parent.parent
USERNAME, TEAM, PASSWORD = "tester", "Testers", "a-long-stack-password-42"
ROLLOUT = 128
TINY_RUN = {"n_envs": 2, "n_steps": ROLLOUT // 2, "batch_size": 64, "n_epochs": 1, "policy": "mlp", "eval_interval": 0,
            "eval_episodes": 2, "probe_states": 5}
"""Hyperparameters of a run of ROLLOUT-frame rollouts that train in a fraction of a second each:
many events, quickly. The fault tests add their budget, checkpoints and live view."""


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.2) -> float:
    """Seconds until ``condition()`` was true, polled every ``interval_s``; AssertionError
    naming ``what`` after ``timeout_s``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        time.sleep(interval_s)
    return time.monotonic() - started


def stack_environment(database: Path, runs_dir: Path) -> dict[str, str]:
    """The environment of a stack's processes: this one's, on the given SQLite database."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY"}}
    env.update(DATABASE_URL=f"sqlite:///{database}", BIDIR_RUNS_DIR=str(runs_dir), DEBUG="1", PYTHONUNBUFFERED="1")
    return env


def make_database(database: Path) -> None:
    """Migrate a new SQLite database at ``database`` and add the user USERNAME (password
    PASSWORD) in the team TEAM, as ``make user`` does."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run_local.py"), "user", USERNAME, "--team", TEAM, "--password-stdin"],
        input=PASSWORD + "\n", text=True, env=stack_environment(database, database.parent / "runs"),
        check=True, cwd=ROOT, capture_output=True, timeout=300,
    )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Session:
    """A user logged in over HTTP (urllib): GETs and form POSTs with the CSRF token, redirects
    not followed."""

    def __init__(self, base: str, username: str = USERNAME, password: str = PASSWORD) -> None:
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect)
        self.get("/accounts/login/")
        status, location, _ = self.post("/accounts/login/", {"username": username, "password": password})
        assert status == 302 and location == "/", f"login failed ({status})"

    def _open(self, request: urllib.request.Request) -> tuple[int, str | None, str]:
        try:
            with self._opener.open(request, timeout=30) as response:
                return response.status, response.headers.get("Location"), response.read().decode()
        except urllib.error.HTTPError as error:  # 3xx (not followed), 4xx, 5xx
            return error.code, error.headers.get("Location"), error.read().decode()

    def get(self, path: str) -> tuple[int, str | None, str]:
        """(status, Location, body)."""
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, data: dict[str, Any]) -> tuple[int, str | None, str]:
        """(status, Location, body) of a form POST."""
        token = next(c.value for c in self.cookies if c.name == "csrftoken")
        body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": token}).encode()
        return self._open(urllib.request.Request(self.base + path, data=body, headers={"X-CSRFToken": token}))

    def launch(self, name: str, mode: str, team_id: int, seeds: str = "0", **hyperparameters: Any) -> int:
        """Launch an experiment through the launch form (hyperparameters not given: their
        defaults); the id of its first seed's run."""
        from experiments_app.hyperparameters import hyperparameter_defaults  # Django-free

        fields = {"name": name, "team": team_id, "env_id": "BabyAI-GoToRedBallNoDists-v0", "mode": mode,
                  "teacher_model": "", "seeds": seeds, "description": "", "tags": "", "notes": ""}
        fields.update({f"hp_{k}": v for k, v in {**hyperparameter_defaults(), **hyperparameters}.items()})
        self.get("/experiments/new/")
        status, location, body = self.post("/experiments/new/", fields)
        assert status == 302 and location, f"launch refused ({status}): {re.findall(r'(?:errorlist[^>]*>|error-box.>)(.*?)</(?:ul|div)>', body, re.S)}"
        return int(re.fullmatch(r"/runs/(\d+)/", location).group(1))


class Stack(Services):
    """A dashboard as ``make run`` starts it, in ``tmp`` on a copy of ``database``; nothing
    runs until the test starts it (``start_redis``, ``start_web(stack.web_port)``,
    ``start_worker``)."""

    def __init__(self, tmp: Path, database: Path) -> None:
        for suffix in ("", "-wal"):  # SQLite's write-ahead log, if it has one
            if (database.parent / (database.name + suffix)).exists():
                shutil.copy(database.parent / (database.name + suffix), tmp / (database.name + suffix))
        self.database = tmp / database.name
        self.runs_dir = tmp / "runs"
        super().__init__(stack_environment(self.database, self.runs_dir), var=tmp / "redis", log_dir=tmp / "logs")
        self.web_port = free_port()
        self.base = f"http://127.0.0.1:{self.web_port}"
        self._db = sqlite3.connect(self.database, timeout=30, check_same_thread=False)
        self._db.row_factory = sqlite3.Row

    def start_all(self, workers: int = 1) -> None:
        self.start_redis()
        for i in range(workers):
            self.start_worker(f"w{i + 1}")
        self.start_web(self.web_port)

    def redis_port(self) -> int:
        return int(urllib.parse.urlsplit(self.env["REDIS_URL"]).port)

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name.replace(':', '-')}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)[-chars:]}" for name in self.processes)

    # --- the database, read directly ---------------------------------------------------

    def query(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        return self._db.execute(sql, params).fetchall()

    def team_id(self) -> int:
        return self.query("SELECT id FROM experiments_app_team WHERE name = ?", TEAM)[0]["id"]

    def run(self, run_id: int) -> dict[str, Any]:
        return dict(self.query("SELECT * FROM experiments_app_run WHERE id = ?", run_id)[0])

    def stored_events(self, run_id: int) -> list[tuple[int, str, int, str]]:
        """(seq, kind, timestep, data as JSON) of every stored metric and hint, in seq order."""
        rows = self.query(
            "SELECT seq, kind, timestep, data FROM experiments_app_metric WHERE run_id = ? UNION ALL "
            "SELECT seq, 'hint', timestep, json_object('situation', situation, 'source', source) FROM experiments_app_hint "
            "WHERE run_id = ? ORDER BY seq", run_id, run_id)
        return [tuple(row) for row in rows]

    def chart_points(self, run_id: int) -> dict[str, list[int]]:
        """The frames at which the run page charts a training return and an fps value: the
        stored events' own, in seq order."""
        def frames(kind: str, column: str) -> list[int]:
            return [row[0] for row in self.query(
                f"SELECT timestep FROM experiments_app_metric WHERE run_id = ? AND kind = ? AND {column} IS NOT NULL "
                "ORDER BY seq", run_id, kind)]

        return {"return": frames("metrics", "mean_return"), "fps": frames("progress", "fps")}

    def checkpoint_state(self, run_id: int) -> dict[str, Any]:
        return json.loads((self.runs_dir / f"run-{run_id}" / "checkpoint" / "state.json").read_text())

    def close(self) -> None:
        self._db.close()
        self.stop_all(timeout_s=60)
