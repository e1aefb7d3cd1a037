"""A PostgreSQL restart mid-run, against a real stack (Redis, daphne, a Celery worker as ``make
run`` starts them) on a PostgreSQL server of the test's own: the run goes on training while the
database is down, its events are written once it is back, and it succeeds with every rollout
stored once. Needs PostgreSQL's server binaries (``initdb``, ``pg_ctl``: Debian's postgresql
package); skipped without them."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.run_local import Services, free_port
from tests.stack import (PASSWORD, ROLLOUT, ROOT, TEAM, TINY_RUN, USERNAME, Session, stack_environment,
                         wait_until)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(420)]

RUN = {**TINY_RUN, "frame_interval_s": 0.5, "checkpoint_interval": 5, "total_timesteps": 200 * ROLLOUT}
DOWN_S = 10


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1:``port`` (trust authentication), run as the
    ``postgres`` user when this process is root (PostgreSQL refuses to run as root)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir, self.port = bindir, free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bidir-pg-", dir="/tmp"))
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self._pg([str(bindir / "initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres"])

    def _pg(self, args: list[str]) -> None:
        subprocess.run(self.as_user + args, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._pg([str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start"])

    def stop(self) -> None:
        self._pg([str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop"])

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def query(self, sql: str, *params: object) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url("bidir"), autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bindirs or (os.geteuid() == 0 and not shutil.which("runuser")):
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): install Debian's postgresql package to run it")
    server = Postgres(Path(bindirs[-1]))
    server.start()
    try:
        import psycopg

        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bidir")
        yield server
    finally:
        server.remove()


def test_a_postgresql_restart_mid_run_loses_no_event_and_the_run_succeeds(postgres: Postgres, tmp_path: Path,
                                                                         report) -> None:
    env = stack_environment(tmp_path / "unused.sqlite3", tmp_path / "runs")
    env["DATABASE_URL"] = postgres.url("bidir")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "run_local.py"), "user", USERNAME, "--team", TEAM,
                    "--password-stdin"], input=PASSWORD + "\n", text=True, env=env, check=True, cwd=ROOT,
                   capture_output=True, timeout=300)
    stack = Services(env, var=tmp_path / "redis", log_dir=tmp_path / "logs")
    try:
        stack.start_redis()
        stack.start_worker("w1")
        port = free_port()
        stack.start_web(port)
        session = Session(f"http://127.0.0.1:{port}")
        team_id = postgres.query("SELECT id FROM experiments_app_team WHERE name = %s", TEAM)[0][0]
        run_id = session.launch("postgres restart", "ppo", team_id, **RUN)

        def progress() -> list[int]:
            rows = postgres.query("SELECT timestep FROM experiments_app_metric WHERE run_id = %s AND kind = 'progress' "
                                  "ORDER BY seq", run_id)
            return [t for (t,) in rows]

        def logs() -> str:
            return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted((tmp_path / "logs").glob("*.log")))

        wait_until(lambda: len(progress()) >= 5, 180, f"5 rollouts stored\n{logs()}")
        before = len(progress())
        postgres.stop()
        stopped_at = time.monotonic()
        time.sleep(DOWN_S)
        postgres.start()
        down_s = time.monotonic() - stopped_at
        caught_up_s = wait_until(lambda: len(progress()) > before + DOWN_S, 120, f"rollouts stored again\n{logs()}")
        wait_until(lambda: postgres.query("SELECT status FROM experiments_app_run WHERE id = %s", run_id)[0][0]
                   not in ("queued", "running"), 300, f"the run ends\n{logs()}")
        status, error = postgres.query("SELECT status, error FROM experiments_app_run WHERE id = %s", run_id)[0]
        assert status == "succeeded", error
        stored = progress()
        assert stored == list(range(ROLLOUT, RUN["total_timesteps"] + 1, ROLLOUT)), "every rollout stored once"
        metrics = postgres.query("SELECT COUNT(*) FROM experiments_app_metric WHERE run_id = %s AND kind = 'metrics'",
                                 run_id)[0][0]
        assert metrics == len(stored)
        assert "retrying" in (tmp_path / "logs" / "worker-w1.log").read_text(), "the worker saw the outage"
        report(f"PostgreSQL stopped after {before} rollouts and started again {down_s:.1f} s later: rollouts stored "
               f"again {caught_up_s:.1f} s after the restart, the run succeeded with all {len(stored)} rollouts' "
               f"progress and metrics stored once")
    finally:
        stack.stop_all(timeout_s=30)
