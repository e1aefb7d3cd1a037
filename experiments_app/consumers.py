"""A run's live channel. The client connects to ``ws/runs/<id>/`` and sends
``{"type": "backfill", "last_seq": n}`` (n: the highest stored event it holds, 0 at first); the
server joins the run's group, then answers with every stored event after n and the run's state
marked ``"backfill": true``, and streams live updates from then on. The client may send the
same request again at any time (it does, every few seconds): that heals any live message the
channel layer lost, and joins the group again, which a Redis that lost its data has forgotten.
A back-fill waits at most JOIN_TIMEOUT_S for the channel layer: while Redis hangs, it still
answers, from the database.

Messages to the client:
  {"type": "events", "events": [event, ...]}  stored events in seq order (may repeat ones the
                                               client has: it ignores seq <= its last_seq)
  {"type": "run", "run": {...}}               the run's state (selectors.run_state); with
                                               "backfill": true it ends a back-fill answer
  {"type": "frame", "event": event}           a live frame; frames are never back-filled
Frames that are not JSON text, and JSON that is not a back-fill request, are ignored.
Close codes: 4401 not logged in, 4403 not one of the user's runs: at connect, and at any
back-fill request after the user left the run's team (or the run was deleted), which leaves
the run's group first, so nothing more of the run reaches them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from experiments_app import selectors

logger = logging.getLogger(__name__)

BACKFILL_CHUNK = 2000
JOIN_TIMEOUT_S = 2.0


class RunConsumer(AsyncJsonWebsocketConsumer):
    run_id: int
    user: Any
    group: str | None = None
    """The run's group while the user may see the run; None before connect and once dropped."""

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
        await self._join()
        answer = await database_sync_to_async(self._backfill)(last_seq)
        if answer is None:
            await self._drop()
            return
        events, state = answer
        for start in range(0, len(events), BACKFILL_CHUNK):
            await self.send_json({"type": "events", "events": events[start : start + BACKFILL_CHUNK]})
        await self.send_json({"type": "run", "run": state, "backfill": True})

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

    def _backfill(self, last_seq: int) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
        """The events after ``last_seq`` and the run's state; None if the user may no longer
        see the run (checked again on every request: membership changes while pages stay open)."""
        # The state first: everything stored up to it is in the events read next, so a state
        # that says the run is final comes with all of the run's events.
        run = selectors.run_get(user=self.user, run_id=self.run_id)
        if run is None:
            return None
        return selectors.run_events_since(run_id=self.run_id, after_seq=last_seq), selectors.run_state(run=run)

    async def run_update(self, message: dict[str, Any]) -> None:
        if self.group is None:  # dropped: a live message already on its way is not delivered
            return
        if message.get("events"):
            await self.send_json({"type": "events", "events": message["events"]})
        await self.send_json({"type": "run", "run": message["run"]})

    async def run_frame(self, message: dict[str, Any]) -> None:
        if self.group is None:
            return
        await self.send_json({"type": "frame", "event": message["event"]})
