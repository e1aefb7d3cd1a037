"""The run's WebSocket: who may connect, back-fill by seq, live events and frames. Uses the
in-memory channel layer; each test body is a coroutine run with async_to_sync."""

import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from experiments_app import consumers, rollups, selectors, services
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
        assert state == {"type": "run", "run": state["run"], "backfill": True, "more": False} and state["run"]["last_seq"] == 3

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


def rollouts(count: int, eval_every: int = 7):
    """Events as a run reports them: per rollout a hint, METRICS and PROGRESS, and now and then
    an EVALUATION; the mean return rises with the rollout."""
    events, seq = [], 0
    for i in range(count):
        t = 512 * (i + 1)
        for kind, data in [(EventKind.HINT, hint_data()), (EventKind.METRICS, metrics_data(i / count)),
                           (EventKind.PROGRESS, progress_data(t, 512 * count))]:
            seq += 1
            events.append(event(seq, kind, t, **data))
        if i % eval_every == 0:
            seq += 1
            events.append(event(seq, EventKind.EVALUATION, t, mean_return=0.5, success_rate=0.5, mean_length=9.0,
                                episodes=5, sampled_mean_return=0.7, sampled_success_rate=0.75, sampled_mean_length=8.0))
    return events


def record(run, events, batch: int = 2000) -> None:
    for start in range(0, len(events), batch):
        services.run_record_events(run_id=run.pk, events=events[start : start + batch])


async def backfill_answer(comm, last_seq: int) -> list[dict]:
    """The messages of one back-fill answer, its closing state included."""
    await comm.send_json_to({"type": "backfill", "last_seq": last_seq})
    messages = []
    while not (message := await comm.receive_json_from(timeout=10)).get("backfill"):
        messages.append(message)
    return messages + [message]


def test_a_long_run_is_sent_as_its_rolled_up_history_and_its_last_events(run, alice):
    """Past LONG_RUN_EVENTS, the first back-fill is the series from the rollups (each point a
    chunk's mean, least and greatest value, the coarsest level first, then finer ones) up to
    within a finest chunk of RECENT_EVENTS before the end, then the events after it."""
    from tests.web.test_rollups import expected_chunks

    events = rollouts(3500)
    record(run, events)
    run.refresh_from_db()
    assert run.last_seq > consumers.LONG_RUN_EVENTS

    async def body():
        comm = communicator(run.pk, alice)
        await comm.connect()
        history, *pages, state = await backfill_answer(comm, 0)
        await comm.disconnect()
        return history, pages, state

    history, pages, state = async_to_sync(body)()
    assert history["type"] == "history" and state["backfill"] and not state["more"]
    top = rollups.level_for(run.last_seq, selectors.HISTORY_POINTS)
    through = history["through_seq"]
    assert (through + 1) % (1 << rollups.LEVEL_MIN) == 0
    assert consumers.RECENT_EVENTS <= run.last_seq - through < consumers.RECENT_EVENTS + (1 << rollups.LEVEL_MIN)
    assert set(history["series"]) == set(rollups.SERIES)
    for name in ("mean_return", "fps", "eval_sampled_return"):
        series = history["series"][name]
        kind, column = rollups.SERIES[name]
        values = [(e.timestep, e.data[column]) for e in events if e.seq <= through and e.kind.value == kind]
        assert len(series["x"]) <= selectors.HISTORY_POINTS + top - rollups.LEVEL_MIN + 1
        assert sum(series["n"]) == len(values), "every row up to through_seq in one point"
        assert sum(n * y for n, y in zip(series["n"], series["y"])) == pytest.approx(sum(v for _, v in values), rel=1e-4)
        assert series["x"] == sorted(series["x"]) and all(lo - 1e-4 <= y <= hi + 1e-4 for lo, y, hi in
                                                         zip(series["low"], series["y"], series["high"]))
        first = expected_chunks([e for e in events if e.seq < 1 << top], name, top)[0]
        assert (series["n"][0], series["y"][0]) == pytest.approx((first[0], first[2] / first[0]), abs=1e-4), \
            "the first point is the coarsest level's first chunk"
    sent = [e for page in pages for e in page["events"]]
    after = [e for e in events if e.seq > through]
    assert [e["seq"] for e in sent if e["kind"] != "hint"] == [e.seq for e in after if e.kind != EventKind.HINT]
    assert sent[-1]["seq"] == run.last_seq and len(sent) < run.last_seq - through + 1


def test_a_client_far_behind_gets_pages_each_ending_with_more(run, alice, monkeypatch):
    monkeypatch.setattr(consumers, "BACKFILL_PAGE", 100)
    monkeypatch.setattr(consumers, "BACKFILL_BURST", 1)  # the next page needs no token
    events = rollouts(200)
    record(run, events)

    async def body():
        comm = communicator(run.pk, alice)
        await comm.connect()
        received, last_seq, answers = [], 0, 0
        while True:
            *pages, state = await backfill_answer(comm, last_seq)
            answers += 1
            page = [e for p in pages for e in p["events"]]
            assert len([e for e in page if e["kind"] != "hint"]) <= 100
            received += page
            last_seq = page[-1]["seq"] if page else last_seq
            if not state["more"]:
                break
        await comm.disconnect()
        return received, answers

    received, answers = async_to_sync(body)()
    metrics = [e.seq for e in events if e.kind != EventKind.HINT]
    assert answers == -(-len(metrics) // 100)
    assert [e["seq"] for e in received if e["kind"] != "hint"] == metrics, "every event once, in order"


def test_live_events_do_not_overtake_the_pages_of_a_back_fill(run, alice, monkeypatch):
    """Stored while the client pages: they come with the pages, not before them."""
    monkeypatch.setattr(consumers, "BACKFILL_PAGE", 10)
    record(run, stored_events(25))

    async def body():
        comm = communicator(run.pk, alice)
        await comm.connect()
        *pages, state = await backfill_answer(comm, 0)
        assert state["more"]
        await database_sync_to_async(services.run_record_events)(run_id=run.pk, events=stored_events(1, start=26))
        live = await comm.receive_json_from(timeout=5)
        assert live["type"] == "run" and "events" not in live, "the state only"
        received = [e["seq"] for p in pages for e in p["events"]]
        while True:
            *pages, state = await backfill_answer(comm, received[-1])
            received += [e["seq"] for p in pages for e in p["events"]]
            if not state["more"]:
                break
        await database_sync_to_async(services.run_record_events)(run_id=run.pk, events=stored_events(1, start=27))
        after = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return received, after

    received, after = async_to_sync(body)()
    assert received == list(range(1, 27)), "every event once, in order, the live one in its page"
    assert [e["seq"] for e in after["events"]] == [27], "live again after the last page"


def test_repeated_backfill_requests_are_rate_limited_per_connection(run, alice, monkeypatch):
    monkeypatch.setattr(consumers, "BACKFILL_BURST", 3)
    monkeypatch.setattr(consumers, "BACKFILL_PER_S", 10.0)
    record(run, rollouts(5))

    async def body():
        comm = communicator(run.pk, alice)
        await comm.connect()
        for _ in range(3):
            await backfill_answer(comm, 0)
        started = time.monotonic()
        for _ in range(5):
            await backfill_answer(comm, 0)
        await comm.disconnect()
        return time.monotonic() - started

    limited = async_to_sync(body)()
    assert limited >= 5 / 10.0 * 0.9, f"past the burst one answer per 1/BACKFILL_PER_S s (took {limited:.2f} s)"


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
