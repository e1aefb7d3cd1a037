"""Health checks for ``GET /healthz``: each answers quickly (short timeouts) and never raises.
Anonymous callers get a report at most ``settings.HEALTH_CACHE_S`` old (``health_verdict``):
probes, or anyone, asking many times a second cost one round of checks (a broadcast to the
workers among them) per process every few seconds."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

CHECK_TIMEOUT_S = 1.5


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def _broker() -> str:
    from experiments_app import broker

    return broker.check(timeout_s=CHECK_TIMEOUT_S)


def _channel_layer() -> str:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")

    async def round_trip() -> None:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "health.ping"})
        await asyncio.wait_for(layer.receive(channel), timeout=CHECK_TIMEOUT_S)

    async_to_sync(round_trip)()
    return type(layer).__name__


def _workers() -> list[str]:
    from bidir_site.celery import app

    replies = app.control.inspect(timeout=CHECK_TIMEOUT_S).ping() or {}
    if not replies:
        raise RuntimeError("no worker answered ping")
    return sorted(replies)


CHECKS: dict[str, Callable[[], Any]] = {
    "database": _database,
    "broker": _broker,
    "channel_layer": _channel_layer,
    "workers": _workers,
}


def health_report() -> dict[str, Any]:
    """{"ok": all passed, name: {"ok", "detail" or "error", "ms"} for each check}."""
    report: dict[str, Any] = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            report[name] = {"ok": True, "detail": check()}
        except Exception as exc:
            report[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        report[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    report["ok"] = all(report[name]["ok"] for name in CHECKS)
    return report


_cache_lock = threading.Lock()
_cached: tuple[float, dict[str, Any]] | None = None
"""(time.monotonic() when made, report) of this process's latest report."""


def health_verdict() -> dict[str, Any]:
    """``health_report``'s verdicts only ({"ok", name: {"ok"}}), from a report at most
    ``settings.HEALTH_CACHE_S`` old: a caller that finds it older makes a new one, and callers
    meanwhile wait for it instead of checking too."""
    global _cached
    with _cache_lock:
        if _cached is None or time.monotonic() - _cached[0] >= settings.HEALTH_CACHE_S:
            _cached = (time.monotonic(), health_report())
        report = _cached[1]
    return {name: {"ok": check["ok"]} if isinstance(check, dict) else check for name, check in report.items()}
