"""A run's live channel. The client connects to ``ws/runs/<id>/`` and sends
``{"type": "backfill", "last_seq": n}`` (n: the highest stored event it holds, 0 at first); the
server joins the run's group, then answers with a page of the stored events after n and the
run's state marked ``"backfill": true``, and streams live updates from then on. An answer
marked ``"more": true`` left events out: the client asks again from the page's last event. The
client may send the same request again at any time (it does, every few seconds): that heals
any live message the channel layer lost, and joins the group again, which a Redis that lost its
data has forgotten. A back-fill waits at most JOIN_TIMEOUT_S for the channel layer: while Redis
hangs, it still answers, from the database.

What one request costs is bounded, whatever the run's length: a page holds at most
BACKFILL_PAGE metric, evaluation and progress events; the first request (n = 0) of a run of more than
LONG_RUN_EVENTS events is answered with the run's history (its charted series, downsampled from
the rollups the compare page reads) and then only the events of its last RECENT_EVENTS or so;
and a connection's requests are rate-limited (BACKFILL_BURST, then BACKFILL_PER_S) except the
next page after a "more" answer.

Messages to the client:
  {"type": "history", "through_seq": s,        a long run's series up to seq s (rollups.SERIES:
   "series": {name: {"x", "y", "low", "high",   per point its rows' mean timestep, mean, least
   "n"}}}                                       and greatest value, and how many rows); the
                                               events that follow start after s
  {"type": "events", "events": [event, ...]}  stored events in seq order (may repeat ones the
                                               client has: it ignores seq <= its last_seq)
  {"type": "run", "run": {...}}               the run's state (selectors.run_state); with
                                               "backfill": true it ends a back-fill answer,
                                               whose "more" says whether events were left out
  {"type": "frame", "event": event}           a live frame; frames are never back-filled
Frames that are not JSON text, and JSON that is not a back-fill request, are ignored.
Close codes: 4401 not logged in, 4403 not one of the user's runs: at connect, and at any
back-fill request after the user left the run's team (or the run was deleted), which leaves
the run's group first, so nothing more of the run reaches them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from experiments_app import selectors

logger = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 2.0
BACKFILL_PAGE = 2000
LONG_RUN_EVENTS = 10_000
RECENT_EVENTS = 1_000
BACKFILL_BURST = 5
BACKFILL_PER_S = 1.0


class RunConsumer(AsyncJsonWebsocketConsumer):
    run_id: int
    user: Any
    group: str | None = None
    """The run's group while the user may see the run; None before connect and once dropped."""
    tokens: float = BACKFILL_BURST
    tokens_at: float = 0.0
    next_page_after: int | None = None
    """The last seq of an answer marked "more": a request from there on is not rate-limited."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        run = await database_sync_to_async(selectors.run_get)(user=user, run_id=run_id)
        if run is None:
            await self.close(code=4403)
            return
        self.run_id = run_id
        self.user = user
        self.group = run.group_name

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        """Frames that are not JSON text are ignored, like JSON this consumer cannot use: a bad
        frame must not cost the page its connection."""
        if text_data is None:
            return
        try:
            content = await self.decode_json(text_data)
        except ValueError:
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if self.group is None or not isinstance(content, dict) or content.get("type") != "backfill":
            return
        last_seq = content.get("last_seq", 0)
        if not isinstance(last_seq, int) or isinstance(last_seq, bool) or last_seq < 0:
            last_seq = 0
        if self.next_page_after is not None and last_seq >= self.next_page_after:
            self.next_page_after = None  # the next page: each moves on by a page, so these are bounded too
        else:
            await self._take_token()
        await self._join()
        answer = await database_sync_to_async(self._backfill)(last_seq)
        if answer is None:
            await self._drop()
            return
        history, page, state = answer
        if history is not None:
            await self.send_json({"type": "history", "through_seq": history.through_seq, "series": {
                name: _curve_as_json(curve) for name, curve in history.series.items()}})
        if page.events:
            await self.send_json({"type": "events", "events": page.events})
        if page.more:
            self.next_page_after = page.events[-1]["seq"]
        await self.send_json({"type": "run", "run": state, "backfill": True, "more": page.more})

    async def _take_token(self) -> None:
        """Wait, if need be, until this connection may make another back-fill request: a token
        bucket of BACKFILL_BURST requests, refilled at BACKFILL_PER_S. Waiting rather than
        refusing keeps an honest client's answer coming; a script that repeats requests gets
        one answer a second."""
        now = time.monotonic()
        self.tokens = min(BACKFILL_BURST, self.tokens + (now - self.tokens_at) * BACKFILL_PER_S)
        self.tokens_at = now
        if self.tokens < 1:
            await asyncio.sleep((1 - self.tokens) / BACKFILL_PER_S)
            self.tokens, self.tokens_at = 1.0, time.monotonic()
        self.tokens -= 1

    async def _join(self) -> None:
        """Join the run's group (idempotent), before the back-fill's read: an update sent after
        the join arrives through the group, after the back-fill (one message is handled at a
        time); one sent before it was stored before the read, so the back-fill carries it.
        Joining only here, not on connect, keeps live events from overtaking the first
        back-fill: the client would take them for all it missed and skip the rest. Best
        effort: without the channel layer the back-fill still answers, from the database."""
        try:
            await asyncio.wait_for(self.channel_layer.group_add(self.group, self.channel_name), JOIN_TIMEOUT_S)
        except Exception:
            logger.warning("could not join %s: back-fill only until the next request", self.group, exc_info=True)

    async def _drop(self) -> None:
        """Leave the run's group, then close with 4403: the user may no longer see the run."""
        group, self.group = self.group, None
        try:
            await asyncio.wait_for(self.channel_layer.group_discard(group, self.channel_name), JOIN_TIMEOUT_S)
        except Exception:  # the group forgets the channel at its expiry, and the handlers send nothing now
            logger.warning("could not leave %s", group, exc_info=True)
        await self.close(code=4403)

    def _backfill(
        self, last_seq: int
    ) -> tuple[selectors.RunHistory | None, selectors.EventPage, dict[str, Any]] | None:
        """A long run's history (on a first request), the page of events after it or after
        ``last_seq``, and the run's state; None if the user may no longer see the run (checked
        again on every request: membership changes while pages stay open)."""
        # The state first: everything stored up to it is in the events read next, so a state
        # that says the run is final comes, with the last page, with all of the run's events.
        run = selectors.run_get(user=self.user, run_id=self.run_id)
        if run is None:
            return None
        history = None
        if last_seq == 0 and run.last_seq > LONG_RUN_EVENTS:
            history = selectors.run_history(run=run, recent=RECENT_EVENTS)
        after = history.through_seq if history else last_seq
        page = selectors.run_events_since(run_id=self.run_id, after_seq=after, limit=BACKFILL_PAGE)
        return history, page, selectors.run_state(run=run)

    async def run_update(self, message: dict[str, Any]) -> None:
        if self.group is None:  # dropped: a live message already on its way is not delivered
            return
        # While the client pages through a back-fill, live events would overtake the pages to
        # come (it skips what is older than the newest it holds); they are stored, so the
        # pages carry them.
        if message.get("events") and self.next_page_after is None:
            await self.send_json({"type": "events", "events": message["events"]})
        await self.send_json({"type": "run", "run": message["run"]})

    async def run_frame(self, message: dict[str, Any]) -> None:
        if self.group is None:
            return
        await self.send_json({"type": "frame", "event": message["event"]})


def _curve_as_json(curve: selectors.Curve) -> dict[str, list[float]]:
    """A history series as the page reads it; values to 4 decimals (a chart's resolution)."""
    return {
        "x": [round(v) for v in curve.x.tolist()],
        "y": [round(v, 4) for v in curve.y.tolist()],
        "low": [round(v, 4) for v in curve.low.tolist()],
        "high": [round(v, 4) for v in curve.high.tolist()],
        "n": [int(v) for v in curve.n.tolist()],
    }
