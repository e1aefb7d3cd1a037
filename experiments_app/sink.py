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

RETRY_S = 0.5
"""How long a writer waits after a failed write before trying again; doubled after each failure
of the same outage, up to RETRY_MAX_S."""
RETRY_MAX_S = 5.0
OUTAGE_LIMIT_S = 300.0
"""How long writes may keep failing (a database restarting, a network blip) before the run fails."""


class EventsNotStored(DatabaseError):
    """The run's events could not be written for OUTAGE_LIMIT_S: the run cannot go on."""


class DatabaseSink:
    """Buffers a run's events and writes them in batches (``services.run_record_events``: one
    transaction, then one channel-layer message). No event waits more than
    ``flush_interval_s`` before its batch is written: a background writer thread writes what is
    pending once the oldest of it is that old, so an event the engine emits just before a
    silent stretch (the PROGRESS closing a rollout, while the next rollout or an evaluation
    runs) reaches the page within that time, not with the engine's next event. Events emitted
    together (a rollout's METRICS and PROGRESS) share one batch. Urgent kinds and a batch of
    ``max_batch`` events go to the background writer at once; an urgent event emitted on the
    thread that created the sink (the engine's) returns once it is stored, so that the engine
    goes on (replaces a checkpoint, ends) only with the database knowing. ``flush`` and
    ``close`` write on the calling thread. Writes never overlap and go in seq order.

    While the engine trains, its thread never writes (only ``flush`` and ``close`` do, at the
    end), so a database blip does not stop training: a failed write is retried with backoff
    (RETRY_S, doubling up to RETRY_MAX_S), its events kept, for up to OUTAGE_LIMIT_S; past that the next ``emit`` (and ``flush``, ``close``) raises
    EventsNotStored, and the engine fails the run.

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
        self._stored = threading.Condition()  # guards _stored_seq, _failure; notified after each write
        self._stored_seq = 0
        self._failure: EventsNotStored | None = None
        self._failing_since: float | None = None  # monotonic start of the current outage
        self._retry_s = RETRY_S
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
        self._raise_if_done()
        if event.kind == EventKind.FRAME:
            services.run_frame_publish(run_id=self.run_id, event=event)
            return
        now = time.monotonic()
        urgent = event.kind in URGENT
        with self._pending:
            if not self._buffer:
                self._oldest = now
            self._buffer.append(event)
            if urgent or len(self._buffer) >= self.max_batch:
                self._due_now = True
            self._pending.notify()
        if urgent and threading.get_ident() == self._owner:
            with self._stored:
                self._stored.wait_for(
                    lambda: self._stored_seq >= event.seq or self._failure is not None or self.claim_lost.is_set()
                )
            self._raise_if_done()

    def flush(self) -> None:
        """Write everything buffered now, on the calling thread, retrying a failed write as the
        background writer does; raises RunClaimLost, or EventsNotStored past OUTAGE_LIMIT_S."""
        while not self._write_pending():
            self._raise_if_done()
            time.sleep(self._retry_in())
        self._raise_if_done()

    def _write_pending(self) -> bool:
        """One write of everything buffered; False if it failed (the events kept, the failure
        logged), True if it succeeded or there was nothing to write. Raises RunClaimLost."""
        with self._write:
            if self._failure is not None:  # the run is failing: nothing more is tried
                return True
            with self._pending:
                batch, self._buffer, self._due_now = self._buffer, [], False
            if not batch:
                return True
            try:
                services.run_record_events(run_id=self.run_id, events=batch, attempt=self.attempt)
            except services.RunClaimLost:
                self._lose_claim()
                raise
            except Exception as exc:
                with self._pending:
                    self._buffer[:0] = batch
                    self._oldest = time.monotonic()
                self._failed_write(exc)
                return False
            with self._stored:
                self._stored_seq = max(self._stored_seq, max(e.seq for e in batch))
                self._failing_since = None
                self._stored.notify_all()
            return True

    def _failed_write(self, exc: Exception) -> None:
        now = time.monotonic()
        connection.close()  # a broken connection is not reused; the next write opens another
        with self._stored:
            if self._failing_since is None:
                self._failing_since, self._retry_s = now, RETRY_S
            down_s = now - self._failing_since
            if down_s > OUTAGE_LIMIT_S:
                self._failure = EventsNotStored(
                    f"the events of run {self.run_id} could not be stored for {down_s:.0f} s: {type(exc).__name__}: {exc}")
                self._stored.notify_all()
        logger.warning("writing events of run %s failed for %.0f s; retrying in %.1f s (training goes on)",
                       self.run_id, down_s, self._retry_s, exc_info=True)

    def _retry_in(self) -> float:
        """The wait before the next try of the current outage, doubling each time."""
        with self._stored:
            wait, self._retry_s = self._retry_s, min(self._retry_s * 2, RETRY_MAX_S)
        return wait

    def _raise_if_done(self) -> None:
        if self.claim_lost.is_set():
            raise services.RunClaimLost(f"run {self.run_id} is no longer attempt {self.attempt}'s")
        if self._failure is not None:
            raise self._failure

    def should_stop(self) -> bool:
        """True once a stop was requested; asks the database at most every ``stop_poll_s``
        (while it does not answer, the answer is the last one it gave)."""
        now = time.monotonic()
        if not self._stop and now - self._last_stop_poll >= self.stop_poll_s:
            self._last_stop_poll = now
            try:
                self._stop = selectors.run_stop_requested(run_id=self.run_id)
            except DatabaseError:
                logger.warning("run %s: could not read its stop flag", self.run_id, exc_info=True)
                connection.close()
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
        ``flush_interval_s`` old (or an urgent one or a full batch arrives), then writes all
        that is buffered, retrying after a failure. Leaves the rest to ``close``."""
        try:
            while True:
                with self._pending:
                    while not self._closing and not (self._buffer and (self._due_now or self._due_in() <= 0)):
                        self._pending.wait(self._due_in() if self._buffer else None)
                    if self._closing:
                        return
                try:
                    written = self._write_pending()
                except services.RunClaimLost:
                    return
                if self._failure is not None:
                    return
                if not written:
                    wait = self._retry_in()
                    with self._pending:
                        self._pending.wait_for(lambda: self._closing, timeout=wait)
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
        with self._stored:  # an urgent emit waiting for its write gives up now
            self._stored.notify_all()

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
