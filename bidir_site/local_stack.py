"""Where a running ``make run`` (``scripts/run_local.py``) keeps its services, for the other
processes of this checkout: ``var/stack-<database>.json`` holds the launcher's pid, its Redis
URL and its DEBUG, written once everything listens and removed when it stops. Settings read it
when REDIS_URL is unset, so that ``manage.py launch``, ``celery`` or ``daphne`` started beside
``make run`` on the same database queue to the same Redis. One file per database (like Redis's
queue file): a process on another database must not send its runs to workers that cannot see
them. A file whose pid is no longer alive (a launcher that was killed) counts as absent.
No Django here: the launcher imports it too."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

VAR = Path(__file__).resolve().parent.parent / "var"


def database_key(database_url: str) -> str:
    """A short name for the database ``database_url`` ("" for the default SQLite), naming what
    belongs to it in ``var/``: its stack file, its Redis queue."""
    return hashlib.sha256(database_url.encode()).hexdigest()[:12]


def stack_file(*, database_url: str) -> Path:
    return VAR / f"stack-{database_key(database_url)}.json"


def stack_record(*, database_url: str, redis_url: str, debug: str) -> Path:
    """Record this process as the running stack on ``database_url``; returns the file. Written
    whole (a reader never sees half of it). ``debug``: the stack's DEBUG variable, as set."""
    path = stack_file(database_url=database_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps({"pid": os.getpid(), "redis_url": redis_url, "debug": debug}))
    partial.replace(path)
    return path


def stack_erase(*, database_url: str) -> None:
    """Remove the stack file of ``database_url`` if this process wrote it (another launcher on
    the same database may have replaced it since)."""
    path = stack_file(database_url=database_url)
    recorded = _read(path)
    if recorded is not None and recorded.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def stack_running(*, database_url: str) -> dict[str, Any] | None:
    """The stack recorded for ``database_url`` (pid, redis_url, debug) while its launcher
    lives; None when there is no file, it is unreadable, or its pid is dead."""
    recorded = _read(stack_file(database_url=database_url))
    pid = recorded.get("pid") if recorded is not None else None
    if type(pid) is not int or pid <= 0 or not _alive(pid):  # 0 or less would name process groups
        return None
    return recorded


def _read(path: Path) -> dict[str, Any] | None:
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
