"""The run's WebSocket: who may connect, back-fill by seq, live events and frames. Uses the
in-memory channel layer; each test body is a coroutine run with async_to_sync."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from experiments_app import services
from experiments_app.routing import websocket_urlpatterns
from experiments_app.sink import DatabaseSink
from tests.web.helpers import event, frame_data, hint_data, make_user, metrics_data, progress_data
from workers.events import EventKind

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_channel_layer")]

application = URLRouter(websocket_urlpatterns)


def communicator(run_id: int, user) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(application, f"/ws/runs/{run_id}/")
    comm.scope["user"] = user
    return comm


def stored_events(n: int, start: int = 1):
    return [event(seq, EventKind.METRICS, seq * 128, **metrics_data(seq / 10)) for seq in range(start, start + n)]


def test_anonymous_users_are_closed_with_4401(run):
    async def body():
        comm = communicator(run.pk, AnonymousUser())
        connected, _ = await comm.connect()
        assert connected
        assert await comm.receive_output() == {"type": "websocket.close", "code": 4401}

    async_to_sync(body)()


def test_other_teams_are_closed_with_4403_and_get_no_data(run, bob):
    services.run_record_events(run_id=run.pk, events=stored_events(3))

    async def body():
        comm = communicator(run.pk, bob)
        await comm.connect()
        assert await comm.receive_output() == {"type": "websocket.close", "code": 4403}
        await comm.send_json_to({"type": "backfill", "last_seq": 0})
        assert await comm.receive_nothing(timeout=0.2)

    async_to_sync(body)()


def test_backfill_then_live_events_and_frames(run, alice):
    services.run_record_events(run_id=run.pk, events=stored_events(3))

    async def body():
        comm = communicator(run.pk, alice)
        await comm.connect()
        await comm.send_json_to({"type": "backfill", "last_seq": 0})
        backfill = await comm.receive_json_from()
        assert backfill["type"] == "events" and [e["seq"] for e in backfill["events"]] == [1, 2, 3]
        assert backfill["events"][0]["data"]["mean_return"] == 0.1
        state = await comm.receive_json_from()
        assert state == {"type": "run", "run": state["run"], "backfill": True} and state["run"]["last_seq"] == 3

        # A long interval: the batch is written by close(), on this test's thread, where the
        # in-memory channel layer can wake the consumer (its background writer could not).
        sink = DatabaseSink(run.pk, heartbeat_s=None, flush_interval_s=3600)
        live = [
            event(4, EventKind.HINT, 500, **hint_data()),
            event(5, EventKind.FRAME, 510, **frame_data()),
            event(6, EventKind.PROGRESS, 512, **progress_data(512)),
        ]
        for e in live:
            await database_sync_to_async(sink.emit)(e)
        await database_sync_to_async(sink.close)()

        frame = await comm.receive_json_from()
        assert frame["type"] == "frame" and frame["event"]["seq"] == 5
        events = await comm.receive_json_from()
        assert [e["seq"] for e in events["events"]] == [4, 6]
        assert events["events"][0]["data"]["situation"] == hint_data()["situation"], "sent as data, unescaped"
        state = await comm.receive_json_from()
        assert state["run"]["timesteps"] == 512 and state["run"]["last_seq"] == 6
        await comm.disconnect()

    async_to_sync(body)()


def test_reconnecting_client_gets_only_what_it_missed(run, alice):
    services.run_record_events(run_id=run.pk, events=stored_events(5))

    async def body():
        comm = communicator(run.pk, alice)
        await comm.connect()
        await comm.send_json_to({"type": "backfill", "last_seq": 3})
        backfill = await comm.receive_json_from()
        assert [e["seq"] for e in backfill["events"]] == [4, 5]
        assert (await comm.receive_json_from())["type"] == "run"
        await comm.send_json_to({"type": "backfill", "last_seq": 5})
        assert (await comm.receive_json_from())["type"] == "run", "nothing missed: only the state"
        await comm.send_json_to({"type": "backfill", "last_seq": "junk"})
        assert len((await comm.receive_json_from())["events"]) == 5, "a bad last_seq means from the start"
        await comm.disconnect()

    async_to_sync(body)()


def test_a_user_removed_from_the_team_is_dropped_at_the_next_backfill(run, alice, team_a):
    services.run_record_events(run_id=run.pk, events=stored_events(2))
    mate = make_user("mate", team_a)

    async def body():
        comm = communicator(run.pk, mate)
        await comm.connect()
        await comm.send_json_to({"type": "backfill", "last_seq": 0})
        assert [e["seq"] for e in (await comm.receive_json_from())["events"]] == [1, 2]
        assert (await comm.receive_json_from())["backfill"]
        await database_sync_to_async(services.team_member_remove)(by=alice, team=team_a, user=mate)
        await comm.send_json_to({"type": "backfill", "last_seq": 2})
        assert await comm.receive_output() == {"type": "websocket.close", "code": 4403}
        await database_sync_to_async(services.run_record_events)(run_id=run.pk, events=stored_events(1, start=3))
        assert await comm.receive_nothing(timeout=0.2), "out of the run's group: no live update either"

    async_to_sync(body)()


def test_status_changes_are_pushed(run, alice):
    async def body():
        comm = communicator(run.pk, alice)
        await comm.connect()
        await comm.send_json_to({"type": "backfill", "last_seq": 0})
        assert (await comm.receive_json_from())["run"]["status"] == "queued"
        await database_sync_to_async(services.run_request_stop)(run=run)
        message = await comm.receive_json_from()
        assert message["run"]["status"] == "cancelled" and message["run"]["stop_requested"]
        await comm.disconnect()

    async_to_sync(body)()


def test_the_asgi_app_authenticates_by_session_and_checks_the_origin(client, run, alice):
    from bidir_site.asgi import application as asgi_application

    client.force_login(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def connect(origin: bytes):
        comm = WebsocketCommunicator(asgi_application, f"/ws/runs/{run.pk}/", headers=[(b"origin", origin), (b"cookie", cookie), (b"host", b"testserver")])
        connected, _ = await comm.connect()
        return comm, connected

    async def body():
        comm, connected = await connect(b"http://testserver")
        assert connected
        await comm.send_json_to({"type": "backfill", "last_seq": 0})
        assert (await comm.receive_json_from())["run"]["id"] == run.pk
        await comm.disconnect()
        comm, connected = await connect(b"http://evil.example")
        assert not connected, "cross-site WebSocket hijacking is refused"

    async_to_sync(body)()
