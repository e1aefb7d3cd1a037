"""The engine's EventSink for the web app: events into the database, then onto the channel
layer; plus the run's stop signal and heartbeat."""

from __future__ import annotations

import logging
import threading
import time

from django.db import DatabaseError, connection

from experiments_app import selectors, services
from workers.events import Event, EventKind

logger = logging.getLogger(__name__)

URGENT = frozenset(
    {EventKind.RUN_STARTED, EventKind.CHECKPOINT, EventKind.TEACHER_FAULT, EventKind.RUN_FINISHED, EventKind.RUN_FAILED}
)
"""Kinds that change what the run page says about the run: written at once."""


class DatabaseSink:
    """Buffers a run's events and writes them in batches (``services.run_record_events``: one
    transaction, then one channel-layer message): when ``flush_interval_s`` has passed since the
    last write, when ``max_batch`` events wait, on an urgent kind, and on ``close``.

    Frames are never stored: at most one per ``frame_interval_s`` goes straight to the channel
    layer, the rest are dropped. Only the thread that created the sink writes (it owns one
    database connection); events from other threads, such as the teacher's fault reports,
    wait for that thread's next write or for ``close``.

    With ``heartbeat_s`` set, a background thread refreshes the run's ``heartbeat_at`` at that
    interval until ``close``, also while the engine is silent (loading a model, evaluating).
    """

    def __init__(
        self,
        run_id: int,
        *,
        flush_interval_s: float = 0.5,
        max_batch: int = 200,
        frame_interval_s: float = 0.1,
        stop_poll_s: float = 1.0,
        heartbeat_s: float | None = 5.0,
    ) -> None:
        self.run_id = run_id
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.frame_interval_s = frame_interval_s
        self.stop_poll_s = stop_poll_s
        self._owner = threading.get_ident()
        self._lock = threading.Lock()
        self._buffer: list[Event] = []
        self._last_flush = time.monotonic()
        self._last_frame = float("-inf")
        self._last_stop_poll = float("-inf")
        self._stop = False
        self._closed = threading.Event()
        self._heartbeat: threading.Thread | None = None
        if heartbeat_s:
            self._heartbeat = threading.Thread(
                target=self._beat, args=(heartbeat_s,), name=f"run-{run_id}-heartbeat", daemon=True
            )
            self._heartbeat.start()

    def emit(self, event: Event) -> None:
        now = time.monotonic()
        if event.kind == EventKind.FRAME:
            if now - self._last_frame >= self.frame_interval_s:
                self._last_frame = now
                services.run_frame_publish(run_id=self.run_id, event=event)
            return
        with self._lock:
            self._buffer.append(event)
            pending = len(self._buffer)
        if threading.get_ident() != self._owner:
            return
        if event.kind in URGENT or pending >= self.max_batch or now - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
        self._last_flush = time.monotonic()
        if batch:
            services.run_record_events(run_id=self.run_id, events=batch)

    def should_stop(self) -> bool:
        """True once a stop was requested; asks the database at most every ``stop_poll_s``."""
        now = time.monotonic()
        if not self._stop and now - self._last_stop_poll >= self.stop_poll_s:
            self._last_stop_poll = now
            self._stop = selectors.run_stop_requested(run_id=self.run_id)
        return self._stop

    def close(self) -> None:
        self.flush()
        self._closed.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=10)

    def _beat(self, interval_s: float) -> None:
        try:
            while not self._closed.wait(interval_s):
                try:
                    services.run_heartbeat(run_id=self.run_id)
                except DatabaseError:
                    # A missed beat is harmless; only a long silence marks the run interrupted.
                    logger.warning("heartbeat of run %s failed", self.run_id, exc_info=True)
                    connection.close()
        finally:
            connection.close()  # this thread's own connection
