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

RETRY_S = 1.0
"""How long the background writer waits after a failed write before trying again."""


class DatabaseSink:
    """Buffers a run's events and writes them in batches (``services.run_record_events``: one
    transaction, then one channel-layer message). No event waits more than
    ``flush_interval_s`` before its batch is written: a background writer thread writes what is
    pending once the oldest of it is that old, so an event the engine emits just before a
    silent stretch (the PROGRESS closing a rollout, while the next rollout or an evaluation
    runs) reaches the page within that time, not with the engine's next event. Events emitted
    together (a rollout's METRICS and PROGRESS) share one batch. Urgent kinds, a batch of
    ``max_batch`` events and ``close`` are written at once, on the emitting thread when it is
    the thread that created the sink; from other threads (the teacher's fault reports) they
    go to the background writer without delay. Writes never overlap and go in seq order.

    A failed write raises from the creating thread's write (so the engine fails the run, as
    for any error); the background writer puts the batch back and tries again after
    ``RETRY_S``.

    Frames are never stored: each goes straight to the channel layer. The engine already sends
    them at the run's ``frame_interval_s`` (``workers.engine.LiveView``, the one frame
    throttle); a second one here would drop frames on top of it.

    With ``heartbeat_s`` set, a background thread refreshes the run's ``heartbeat_at`` at that
    interval until ``close``, also while the engine is silent (loading a model, evaluating).

    With ``attempt`` set (the worker's claim, ``services.run_claim``), every write and beat
    checks that the run is still this attempt's. Once it is not (the run was marked
    interrupted while this worker was frozen, and resumed elsewhere), the sink drops what it
    holds and every later ``emit`` raises ``services.RunClaimLost``: the engine stops at once,
    without writing a checkpoint or a summary over the newer attempt's.
    """

    def __init__(
        self,
        run_id: int,
        *,
        attempt: int | None = None,
        flush_interval_s: float = 0.02,
        max_batch: int = 200,
        stop_poll_s: float = 1.0,
        heartbeat_s: float | None = 5.0,
    ) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.claim_lost = threading.Event()
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.stop_poll_s = stop_poll_s
        self._owner = threading.get_ident()
        self._pending = threading.Condition()  # guards _buffer, _oldest, _due_now, _closing
        self._buffer: list[Event] = []
        self._oldest = 0.0  # monotonic time the oldest buffered event arrived
        self._due_now = False  # an urgent event from another thread waits for the writer
        self._closing = False
        self._write = threading.Lock()  # one write at a time, each taking all that is pending
        self._last_stop_poll = float("-inf")
        self._stop = False
        self._closed = threading.Event()
        self._writer = threading.Thread(target=self._write_when_due, name=f"run-{run_id}-writer", daemon=True)
        self._writer.start()
        self._heartbeat: threading.Thread | None = None
        if heartbeat_s:
            self._heartbeat = threading.Thread(
                target=self._beat, args=(heartbeat_s,), name=f"run-{run_id}-heartbeat", daemon=True
            )
            self._heartbeat.start()

    def emit(self, event: Event) -> None:
        if self.claim_lost.is_set():
            raise services.RunClaimLost(f"run {self.run_id} is no longer attempt {self.attempt}'s")
        if event.kind == EventKind.FRAME:
            services.run_frame_publish(run_id=self.run_id, event=event)
            return
        now = time.monotonic()
        at_once = event.kind in URGENT
        with self._pending:
            if not self._buffer:
                self._oldest = now
            self._buffer.append(event)
            at_once = at_once or len(self._buffer) >= self.max_batch
            if at_once and threading.get_ident() != self._owner:
                self._due_now = True
            self._pending.notify()
        if at_once and threading.get_ident() == self._owner:
            self.flush()

    def flush(self) -> None:
        """Write everything buffered now, on the calling thread; raises what the write raised,
        the events kept for the next write."""
        with self._write:
            with self._pending:
                batch, self._buffer, self._due_now = self._buffer, [], False
            if not batch:
                return
            try:
                services.run_record_events(run_id=self.run_id, events=batch, attempt=self.attempt)
            except services.RunClaimLost:
                self._lose_claim()
                raise
            except BaseException:
                with self._pending:
                    self._buffer[:0] = batch
                    self._oldest = time.monotonic()
                raise

    def should_stop(self) -> bool:
        """True once a stop was requested; asks the database at most every ``stop_poll_s``."""
        now = time.monotonic()
        if not self._stop and now - self._last_stop_poll >= self.stop_poll_s:
            self._last_stop_poll = now
            self._stop = selectors.run_stop_requested(run_id=self.run_id)
        return self._stop

    def close(self) -> None:
        with self._pending:
            self._closing = True
            self._pending.notify()
        self._writer.join(timeout=60)
        try:
            if not self.claim_lost.is_set():
                self.flush()
        finally:
            self._closed.set()
            if self._heartbeat is not None:
                self._heartbeat.join(timeout=10)

    def _write_when_due(self) -> None:
        """The background writer: sleeps until the oldest buffered event is
        ``flush_interval_s`` old (or an urgent one from another thread arrives), then writes
        all that is buffered. Leaves the rest to ``close``."""
        try:
            while True:
                with self._pending:
                    while not self._closing and not (self._buffer and (self._due_now or self._due_in() <= 0)):
                        self._pending.wait(self._due_in() if self._buffer else None)
                    if self._closing:
                        return
                try:
                    self.flush()
                except services.RunClaimLost:
                    return
                except Exception:
                    logger.warning("writing events of run %s failed; retrying in %.0f s", self.run_id, RETRY_S, exc_info=True)
                    connection.close()
                    with self._pending:
                        self._pending.wait_for(lambda: self._closing, timeout=RETRY_S)
        finally:
            connection.close()  # this thread's own connection

    def _lose_claim(self) -> None:
        """Another attempt owns the run now: forget what is pending, refuse what comes."""
        if not self.claim_lost.is_set():
            logger.warning("run %s: attempt %s lost the run to a newer one; this worker stops", self.run_id, self.attempt)
        self.claim_lost.set()
        with self._pending:
            self._buffer.clear()
            self._pending.notify()

    def _due_in(self) -> float:
        return self._oldest + self.flush_interval_s - time.monotonic()

    def _beat(self, interval_s: float) -> None:
        try:
            while not self._closed.wait(interval_s):
                try:
                    if not services.run_heartbeat(run_id=self.run_id, attempt=self.attempt) and self.attempt is not None:
                        self._lose_claim()
                        return
                except DatabaseError:
                    # A missed beat is harmless; only a long silence marks the run interrupted.
                    logger.warning("heartbeat of run %s failed", self.run_id, exc_info=True)
                    connection.close()
        finally:
            connection.close()  # this thread's own connection
