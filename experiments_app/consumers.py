"""A run's live channel. The client connects to ``ws/runs/<id>/`` and sends
``{"type": "backfill", "last_seq": n}`` (n: the highest stored event it holds, 0 at first); the
server answers with every stored event after n, then the run's state, then streams.

Messages to the client:
  {"type": "events", "events": [event, ...]}  stored events in seq order (may repeat ones the
                                               client has: it ignores seq <= its last_seq)
  {"type": "run", "run": {...}}               the run's state (selectors.run_state)
  {"type": "frame", "event": event}           a live frame; frames are never back-filled
Close codes: 4401 not logged in, 4403 not one of the user's runs.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from experiments_app import selectors
from experiments_app.models import Run

BACKFILL_CHUNK = 2000


class RunConsumer(AsyncJsonWebsocketConsumer):
    run_id: int
    group: str | None = None

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
        # Join before back-filling: an event stored after the back-fill's query still arrives
        # through the group (the consumer handles one message at a time, so it comes after).
        self.group = run.group_name
        await self.channel_layer.group_add(self.group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if self.group is None or not isinstance(content, dict) or content.get("type") != "backfill":
            return
        last_seq = content.get("last_seq", 0)
        if not isinstance(last_seq, int) or isinstance(last_seq, bool) or last_seq < 0:
            last_seq = 0
        events, state = await database_sync_to_async(self._backfill)(last_seq)
        for start in range(0, len(events), BACKFILL_CHUNK):
            await self.send_json({"type": "events", "events": events[start : start + BACKFILL_CHUNK]})
        await self.send_json({"type": "run", "run": state})

    def _backfill(self, last_seq: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        events = selectors.run_events_since(run_id=self.run_id, after_seq=last_seq)
        return events, selectors.run_state(run=Run.objects.get(pk=self.run_id))

    async def run_update(self, message: dict[str, Any]) -> None:
        if message.get("events"):
            await self.send_json({"type": "events", "events": message["events"]})
        await self.send_json({"type": "run", "run": message["run"]})

    async def run_frame(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "frame", "event": message["event"]})
