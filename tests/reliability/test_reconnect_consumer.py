"""The run's WebSocket consumer when a client reconnects or live messages were lost: live
events never overtake the back-fill, and a repeated back-fill request heals a lost group
membership. In-memory channel layer; each test body is a coroutine run with async_to_sync."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from experiments_app import services
from experiments_app.routing import websocket_urlpatterns
from tests.web.helpers import event, metrics_data
from workers.events import EventKind

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_channel_layer")]


def metrics(first: int, last: int) -> list:
    return [event(seq, EventKind.METRICS, seq * 128, **metrics_data(seq / 100)) for seq in range(first, last + 1)]


async def connected(run, user) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/runs/{run.pk}/")
    comm.scope["user"] = user
    assert (await comm.connect())[0]
    return comm


async def received_seqs(comm: WebsocketCommunicator) -> list[int]:
    """The seqs of the events messages up to and including the next back-fill's end."""
    seqs: list[int] = []
    while True:
        message = await comm.receive_json_from(timeout=5)
        if message["type"] == "events":
            seqs += [e["seq"] for e in message["events"]]
        elif message.get("backfill"):
            return seqs


def test_a_live_update_that_comes_before_the_back_fill_request_does_not_overtake_it(run, alice):
    """The client holds 0..2 and reconnects; 3..5 were stored meanwhile. Event 6 is stored and
    sent to the group after the socket joined it but before the client asked for its back-fill:
    had it been forwarded, the client would hold 6 and skip 3..5 as old."""
    record = database_sync_to_async(services.run_record_events)

    async def body():
        await record(run_id=run.pk, events=metrics(1, 5))
        comm = await connected(run, alice)
        await record(run_id=run.pk, events=metrics(6, 6))
        await comm.send_json_to({"type": "backfill", "last_seq": 2})
        assert await received_seqs(comm) == [3, 4, 5, 6], "the back-fill carries everything, in order"
        await record(run_id=run.pk, events=metrics(7, 7))
        live = await comm.receive_json_from(timeout=5)
        assert [e["seq"] for e in live["events"]] == [7], "then live events flow"
        await comm.disconnect()

    async_to_sync(body)()


def test_a_repeated_back_fill_heals_lost_live_messages_and_a_lost_group_membership(run, alice):
    """As after Redis lost its data while the socket stayed open: the group forgot the socket,
    so nothing live arrives; the client's periodic back-fill returns what it missed and joins
    the group again."""
    record = database_sync_to_async(services.run_record_events)

    async def body():
        comm = await connected(run, alice)
        await comm.send_json_to({"type": "backfill", "last_seq": 0})
        assert await received_seqs(comm) == []
        layer = get_channel_layer()
        for channel in list(layer.groups.get(run.group_name, {})):
            await layer.group_discard(run.group_name, channel)
        await record(run_id=run.pk, events=metrics(1, 3))
        assert await comm.receive_nothing(timeout=0.3), "lost: nothing arrives"
        await comm.send_json_to({"type": "backfill", "last_seq": 0})
        assert await received_seqs(comm) == [1, 2, 3]
        await record(run_id=run.pk, events=metrics(4, 4))
        assert [e["seq"] for e in (await comm.receive_json_from(timeout=5))["events"]] == [4], "live again"
        await comm.disconnect()

    async_to_sync(body)()
