"""DatabaseSink and run_record_events, fed real engine Events: what is stored, how the run
changes, what reaches the channel layer, and back-fill by seq."""

import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from experiments_app import selectors, services
from experiments_app.models import Hint, Metric, Run
from experiments_app.sink import DatabaseSink
from tests.web.helpers import event, frame_data, hint_data, metrics_data, progress_data
from workers.events import EventKind

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_channel_layer")]


class GroupListener:
    """A channel in the run's group, read synchronously."""

    def __init__(self, run: Run):
        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(run.group_name, self.channel)

    def receive_all(self) -> list[dict]:
        async def drain():
            import asyncio

            messages = []
            while True:
                try:
                    messages.append(await asyncio.wait_for(self.layer.receive(self.channel), timeout=0.05))
                except asyncio.TimeoutError:
                    return messages

        return async_to_sync(drain)()


def a_run_of_events(run_id_total: int = 2048):
    return [
        event(1, EventKind.RUN_STARTED, config={"total_timesteps": run_id_total}, env_id="x", mode="ppo",
              actions=["left", "right", "forward"], teacher=None, resumed=False, start_timestep=0),
        event(2, EventKind.HINT, 10, **hint_data()),
        event(3, EventKind.FRAME, 12, **frame_data()),
        event(4, EventKind.METRICS, 128, **metrics_data(0.25)),
        event(5, EventKind.PROGRESS, 128, **progress_data(128)),
        event(6, EventKind.EVALUATION, 128, mean_return=0.5, success_rate=0.6, mean_length=20.0, episodes=5),
        event(7, EventKind.CHECKPOINT, 128, path="/tmp/ckpt", timesteps=128),
        event(8, EventKind.METRICS, 256, **metrics_data(0.75)),
        event(9, EventKind.PROGRESS, 256, **progress_data(256)),
    ]


def test_events_become_rows_and_run_fields(run):
    services.run_claim(run_id=run.pk, worker_host="w", task_id="t")
    sink = DatabaseSink(run.pk, heartbeat_s=None)
    for e in a_run_of_events():
        sink.emit(e)
    sink.close()
    metrics = list(Metric.objects.filter(run=run).order_by("seq"))
    assert [(m.seq, m.kind) for m in metrics] == [
        (4, "metrics"), (5, "progress"), (6, "evaluation"), (8, "metrics"), (9, "progress")]
    assert metrics[0].mean_return == 0.25 and metrics[0].teacher_accuracy == 0.4 and metrics[0].guidance_coef == 0.8
    assert metrics[1].fps == 250.0 and metrics[0].data["episodes"] == 10
    hint = Hint.objects.get(run=run)
    assert hint.seq == 2 and hint.distribution["forward"] == 0.8 and hint.situation == hint_data()["situation"]
    run.refresh_from_db()
    assert run.last_seq == 9 and run.timesteps == 256 and run.fps == 250.0 and run.eta_s == 5.0
    assert run.checkpoint_path == "/tmp/ckpt" and run.heartbeat_at is not None
    assert run.status == Run.Status.RUNNING


def test_a_hints_plan_is_stored_bounded_and_served_with_it(run):
    from experiments_app.selectors import hint_as_event

    services.run_claim(run_id=run.pk, worker_host="w", task_id="t")
    sink = DatabaseSink(run.pk, heartbeat_s=None)
    plan = {"state": "Mission: open the door. Seen so far: a locked blue door.", "subgoal": "pick up the blue key",
            "reached": ["x" * 500] * 30, "feedback": "Feedback from the student: these did not work here: open the blue door."}
    sink.emit(event(1, EventKind.HINT, 10, **hint_data(), plan=plan))
    sink.emit(event(2, EventKind.HINT, 20, **hint_data(), plan="not a plan"))
    sink.close()
    first, second = Hint.objects.filter(run=run).order_by("seq")
    assert first.plan["subgoal"] == "pick up the blue key" and first.plan["feedback"] == plan["feedback"]
    assert len(first.plan["reached"]) == 20 and all(len(r) == 200 for r in first.plan["reached"])
    assert second.plan is None and hint_as_event(first)["data"]["plan"] == first.plan


def test_frames_are_never_stored_and_each_reaches_the_group(run):
    listener = GroupListener(run)
    sink = DatabaseSink(run.pk, heartbeat_s=None)
    sink.emit(event(1, EventKind.FRAME, **frame_data()))
    sink.emit(event(2, EventKind.FRAME, **frame_data()))
    sink.close()
    messages = listener.receive_all()
    assert [(m["type"], m["event"]["seq"]) for m in messages] == [("run.frame", 1), ("run.frame", 2)], \
        "the engine throttles frames; the sink drops none"
    assert messages[0]["event"]["data"]["grid"] == frame_data()["grid"]
    run.refresh_from_db()
    assert run.last_seq == 0 and not Metric.objects.exists()


def test_writes_are_batched_until_the_interval_or_an_urgent_event(run):
    listener = GroupListener(run)
    sink = DatabaseSink(run.pk, heartbeat_s=None, flush_interval_s=3600)
    sink.emit(event(1, EventKind.METRICS, 128, **metrics_data()))
    sink.emit(event(2, EventKind.PROGRESS, 128, **progress_data(128)))
    assert not Metric.objects.exists() and listener.receive_all() == []
    sink.emit(event(3, EventKind.CHECKPOINT, 128, path="/tmp/c", timesteps=128))
    assert Metric.objects.count() == 2
    messages = listener.receive_all()
    assert len(messages) == 1, "one batch, one message"
    assert [e["seq"] for e in messages[0]["events"]] == [1, 2, 3]
    assert messages[0]["run"]["last_seq"] == 3 and messages[0]["run"]["timesteps"] == 128


def test_a_full_batch_is_written_at_once_and_never_on_the_engine_s_thread(run, monkeypatch):
    import threading

    from experiments_app import sink as sink_module

    real, writers = services.run_record_events, []
    monkeypatch.setattr(sink_module.services, "run_record_events",
                        lambda **kwargs: writers.append(threading.get_ident()) or real(**kwargs))
    sink = DatabaseSink(run.pk, heartbeat_s=None, flush_interval_s=3600, max_batch=3)
    for seq in (1, 2, 3):
        sink.emit(event(seq, EventKind.PROGRESS, seq, **progress_data(seq)))
    deadline = time.monotonic() + 5
    while Metric.objects.count() < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert Metric.objects.count() == 3, "not after the hour-long flush interval"
    sink.emit(event(4, EventKind.CHECKPOINT, 4, path="/tmp/c", timesteps=4))
    assert Run.objects.get(pk=run.pk).last_seq == 4, "an urgent event returns once stored"
    sink.close()
    assert writers[:2] and threading.get_ident() not in writers[:2], "written by the background writer"


def test_run_finished_makes_the_run_final_with_its_summary(run):
    services.run_claim(run_id=run.pk, worker_host="w", task_id="t")
    sink = DatabaseSink(run.pk, heartbeat_s=None, flush_interval_s=3600)
    summary = {"timesteps": 2048, "final_eval_return": 0.9}
    sink.emit(event(1, EventKind.RUN_FINISHED, 2048, status="succeeded", summary=summary))
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and run.summary == summary and run.finished_at and run.timesteps == 2048


def test_a_stopped_run_is_cancelled_if_asked_and_interrupted_otherwise(experiment):
    asked, not_asked = experiment.runs.order_by("seed")
    for run in (asked, not_asked):
        services.run_claim(run_id=run.pk, worker_host="w", task_id="t")
    services.run_request_stop(run=asked)
    for run in (asked, not_asked):
        services.run_record_events(run_id=run.pk, events=[event(1, EventKind.RUN_FINISHED, 10, status="stopped", summary={})])
    asked.refresh_from_db()
    not_asked.refresh_from_db()
    assert asked.status == Run.Status.CANCELLED
    assert not_asked.status == Run.Status.INTERRUPTED and not_asked.finished_at is None


def test_run_failed_and_teacher_fault_are_recorded(run):
    services.run_claim(run_id=run.pk, worker_host="w", task_id="t")
    services.run_record_events(run_id=run.pk, events=[
        event(1, EventKind.TEACHER_FAULT, 5, error="llama hung", fallback="student-only"),
        event(2, EventKind.RUN_FAILED, 5, error="ValueError: boom", traceback="Traceback ..."),
    ])
    run.refresh_from_db()
    assert run.teacher_fault == "llama hung"
    assert run.status == Run.Status.FAILED and run.error.startswith("ValueError: boom") and "Traceback" in run.error


def test_recording_a_batch_twice_stores_it_once(run):
    batch = a_run_of_events()
    services.run_record_events(run_id=run.pk, events=batch)
    services.run_record_events(run_id=run.pk, events=batch)
    assert Metric.objects.filter(run=run).count() == 5 and Hint.objects.filter(run=run).count() == 1


def test_backfill_returns_stored_events_after_a_seq_in_order(run):
    services.run_record_events(run_id=run.pk, events=a_run_of_events())
    page = selectors.run_events_since(run_id=run.pk, after_seq=0, limit=100)
    everything = page.events
    assert not page.more and [e["seq"] for e in everything] == [2, 4, 5, 6, 8, 9]
    assert everything[0]["kind"] == "hint" and everything[0]["data"]["teacher_action"] == "forward"
    assert everything[1] == {"seq": 4, "kind": "metrics", "timestep": 128, "time": 1_700_000_004.0,
                             "data": metrics_data(0.25)}
    assert [e["seq"] for e in selectors.run_events_since(run_id=run.pk, after_seq=5, limit=100).events] == [6, 8, 9]
    assert selectors.run_events_since(run_id=run.pk, after_seq=9, limit=100) == selectors.EventPage(events=[], more=False)


def test_backfill_pages_end_at_a_metric_and_carry_the_latest_hints_before_it(run):
    """Hints at 1-10, metrics at 11-20, hints at 21-25, metrics at 26-30."""
    events = [event(seq, EventKind.HINT, seq, **hint_data()) for seq in range(1, 11)]
    events += [event(seq, EventKind.METRICS, seq, **metrics_data()) for seq in range(11, 21)]
    events += [event(seq, EventKind.HINT, seq, **hint_data()) for seq in range(21, 26)]
    events += [event(seq, EventKind.METRICS, seq, **metrics_data()) for seq in range(26, 31)]
    services.run_record_events(run_id=run.pk, events=events)
    first = selectors.run_events_since(run_id=run.pk, after_seq=0, limit=10, hint_limit=3)
    assert first.more and [e["seq"] for e in first.events] == [8, 9, 10, *range(11, 21)]
    last = selectors.run_events_since(run_id=run.pk, after_seq=20, limit=10, hint_limit=3)
    assert not last.more and [e["seq"] for e in last.events] == [23, 24, 25, *range(26, 31)]


def test_backfill_sends_only_the_latest_hints(run):
    hints = [event(seq, EventKind.HINT, seq, **hint_data()) for seq in range(1, 31)]
    services.run_record_events(run_id=run.pk, events=hints)
    seqs = [e["seq"] for e in selectors.run_events_since(run_id=run.pk, after_seq=0, limit=100, hint_limit=5).events]
    assert seqs == [26, 27, 28, 29, 30]


def test_should_stop_reads_the_flag_at_most_every_poll_interval(run, django_assert_max_num_queries):
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING)
    sink = DatabaseSink(run.pk, heartbeat_s=None, stop_poll_s=3600)
    assert sink.should_stop() is False
    services.run_request_stop(run=run)
    with django_assert_max_num_queries(0):
        assert sink.should_stop() is False, "not asked again within the poll interval"
    sink.stop_poll_s = 0
    assert sink.should_stop() is True


def test_heartbeat_thread_refreshes_a_running_run(run):
    services.run_claim(run_id=run.pk, worker_host="w", task_id="t")
    first = Run.objects.get(pk=run.pk).heartbeat_at
    sink = DatabaseSink(run.pk, heartbeat_s=0.05)
    deadline = time.monotonic() + 5
    while Run.objects.get(pk=run.pk).heartbeat_at == first and time.monotonic() < deadline:
        time.sleep(0.05)
    sink.close()
    assert Run.objects.get(pk=run.pk).heartbeat_at > first


def test_an_event_before_a_silence_is_written_within_the_flush_interval(run):
    """The PROGRESS that closes a rollout must not wait for the engine's next event."""
    listener = GroupListener(run)
    sink = DatabaseSink(run.pk, heartbeat_s=None, flush_interval_s=0.05)
    emitted = time.monotonic()
    sink.emit(event(1, EventKind.METRICS, 128, **metrics_data()))
    sink.emit(event(2, EventKind.PROGRESS, 128, **progress_data(128)))
    deadline = emitted + 5
    while Metric.objects.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    written = time.monotonic() - emitted
    messages = listener.receive_all()
    sink.close()
    assert Metric.objects.count() == 2 and written < 1.0
    assert [[e["seq"] for e in m["events"]] for m in messages] == [[1, 2]], "emitted together, one batch"


def test_an_urgent_event_from_another_thread_is_written_without_waiting(run):
    import threading

    sink = DatabaseSink(run.pk, heartbeat_s=None, flush_interval_s=3600)
    fault = threading.Thread(target=sink.emit, args=(event(1, EventKind.TEACHER_FAULT, 5, error="hung", fallback="student-only"),))
    fault.start()
    fault.join()
    deadline = time.monotonic() + 5
    while Run.objects.get(pk=run.pk).last_seq != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    sink.close()
    assert Run.objects.get(pk=run.pk).teacher_fault == "hung"


def test_a_failed_background_write_is_retried_and_nothing_is_lost(run, monkeypatch):
    from experiments_app import sink as sink_module

    real = services.run_record_events
    calls = []

    def fails_once(**kwargs):
        calls.append([e.seq for e in kwargs["events"]])
        if len(calls) == 1:
            raise sink_module.DatabaseError("connection lost")
        real(**kwargs)

    monkeypatch.setattr(sink_module, "RETRY_S", 0.05)
    monkeypatch.setattr(sink_module.services, "run_record_events", fails_once)
    sink = DatabaseSink(run.pk, heartbeat_s=None, flush_interval_s=0.01)
    sink.emit(event(1, EventKind.METRICS, 128, **metrics_data()))
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    sink.emit(event(2, EventKind.PROGRESS, 128, **progress_data(128)))
    sink.close()
    assert calls[:2] == [[1], [1]] and list(Metric.objects.order_by("seq").values_list("seq", flat=True)) == [1, 2]


def failing_writes(monkeypatch, for_s: float) -> list[float]:
    """run_record_events fails with a DatabaseError for ``for_s`` from the first call, as while
    a database restarts; returns the times of the calls."""
    from experiments_app import sink as sink_module

    real, calls = services.run_record_events, []

    def blip(**kwargs):
        calls.append(time.monotonic())
        if calls[-1] - calls[0] < for_s:
            raise sink_module.DatabaseError("the database system is shutting down")
        real(**kwargs)

    monkeypatch.setattr(sink_module, "RETRY_S", 0.05)
    monkeypatch.setattr(sink_module, "RETRY_MAX_S", 0.2)
    monkeypatch.setattr(sink_module.services, "run_record_events", blip)
    monkeypatch.setattr(sink_module.selectors, "run_stop_requested",
                        lambda run_id: (_ for _ in ()).throw(sink_module.DatabaseError("down")))
    return calls


def test_a_database_blip_neither_stops_training_nor_loses_an_event(run, monkeypatch):
    """While writes fail, non-urgent events are only buffered (the engine goes on at once), the
    stop flag reads as before, an urgent event waits until it is stored; nothing is lost."""
    calls = failing_writes(monkeypatch, for_s=1.0)
    sink = DatabaseSink(run.pk, heartbeat_s=None, flush_interval_s=0.01, max_batch=2, stop_poll_s=0)
    started = time.monotonic()
    for seq in range(1, 21):
        sink.emit(event(seq, EventKind.PROGRESS, 128 * seq, **progress_data(128 * seq)))
        assert sink.should_stop() is False
    buffered_s = time.monotonic() - started
    sink.emit(event(21, EventKind.CHECKPOINT, 2560, path="/tmp/c", timesteps=2560))
    waited_s = time.monotonic() - started
    sink.close()
    assert buffered_s < 0.5, f"the engine's thread waited {buffered_s:.2f} s for a failing database"
    assert waited_s >= 0.9 and len(calls) >= 4, "the checkpoint returned once the database was back"
    assert list(Metric.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, 21))
    assert Run.objects.get(pk=run.pk).checkpoint_path == "/tmp/c"


def test_an_outage_longer_than_the_limit_fails_the_run(run, monkeypatch):
    from experiments_app import sink as sink_module

    failing_writes(monkeypatch, for_s=3600)
    monkeypatch.setattr(sink_module, "OUTAGE_LIMIT_S", 0.3)
    sink = DatabaseSink(run.pk, heartbeat_s=None, flush_interval_s=0.01)
    sink.emit(event(1, EventKind.PROGRESS, 128, **progress_data(128)))
    with pytest.raises(sink_module.EventsNotStored, match="could not be stored for"):
        sink.emit(event(2, EventKind.CHECKPOINT, 128, path="/tmp/c", timesteps=128))
    with pytest.raises(sink_module.EventsNotStored):
        sink.close()


# --- a worker that lost its run to a newer attempt -------------------------------------------


def _interrupt(run: Run) -> None:
    """What the sweeper does to a run whose worker went silent (frozen, not dead)."""
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert services.run_mark_interrupted() == [run.pk]


def test_each_claim_is_a_new_attempt(run):
    first = services.run_claim(run_id=run.pk, worker_host="w1", task_id="t")
    _interrupt(run)
    second = services.run_claim(run_id=run.pk, worker_host="w2", task_id="t")
    assert (first.attempt, second.attempt) == (1, 2)


def test_a_frozen_worker_that_wakes_before_anyone_resumed_its_run_takes_it_back(run):
    claimed = services.run_claim(run_id=run.pk, worker_host="w", task_id="t")
    sink = DatabaseSink(run.pk, attempt=claimed.attempt, heartbeat_s=None, flush_interval_s=3600)
    sink.emit(event(1, EventKind.PROGRESS, 128, **progress_data(128)))
    sink.flush()
    _interrupt(run)
    sink.emit(event(2, EventKind.PROGRESS, 256, **progress_data(256)))
    sink.flush()
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and run.error == "" and run.timesteps == 256
    sink.close()


def test_a_frozen_worker_whose_run_was_resumed_elsewhere_writes_nothing_more(run):
    old = services.run_claim(run_id=run.pk, worker_host="w1", task_id="t1")
    old_sink = DatabaseSink(run.pk, attempt=old.attempt, heartbeat_s=None, flush_interval_s=3600)
    old_sink.emit(event(1, EventKind.PROGRESS, 128, **progress_data(128)))
    old_sink.flush()
    _interrupt(run)
    services.run_resume(user=run.experiment.owner, run=run)
    new = services.run_claim(run_id=run.pk, worker_host="w2", task_id="t2")
    new_sink = DatabaseSink(run.pk, attempt=new.attempt, heartbeat_s=None)
    new_sink.emit(event(2, EventKind.PROGRESS, 128, **progress_data(128)))
    new_sink.close()

    old_sink.emit(event(2, EventKind.PROGRESS, 256, **progress_data(256)))  # buffered: the loss shows on writing
    with pytest.raises(services.RunClaimLost):
        old_sink.flush()
    with pytest.raises(services.RunClaimLost):
        old_sink.emit(event(3, EventKind.CHECKPOINT, 256, path="/tmp/c", timesteps=256))
    old_sink.close()  # drops what it held, raises nothing
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and run.attempt == new.attempt and run.worker_host == "w2"
    assert list(Metric.objects.filter(run=run).values_list("seq", "timestep")) == [(1, 128), (2, 128)]
    assert run.checkpoint_path == ""


def test_an_urgent_event_waiting_for_its_write_gives_up_when_the_run_is_lost(run):
    """A frozen worker wakes and checkpoints: the writer learns the run is a newer attempt's,
    and the engine's emit raises instead of waiting for a write that will never come."""
    import threading

    claimed = services.run_claim(run_id=run.pk, worker_host="w1", task_id="t1")
    _interrupt(run)
    services.run_resume(user=run.experiment.owner, run=run)
    services.run_claim(run_id=run.pk, worker_host="w2", task_id="t2")
    raised = []

    def engine() -> None:  # a thread of its own, so that a hang fails the test instead of hanging it
        sink = DatabaseSink(run.pk, attempt=claimed.attempt, heartbeat_s=None)
        try:
            sink.emit(event(1, EventKind.CHECKPOINT, 128, path="/tmp/c", timesteps=128))
        except services.RunClaimLost as exc:
            raised.append(exc)
        sink.close()

    thread = threading.Thread(target=engine, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive() and raised, "emit returned with RunClaimLost"


def test_a_worker_whose_run_was_queued_again_loses_it_at_its_next_heartbeat(run):
    claimed = services.run_claim(run_id=run.pk, worker_host="w", task_id="t")
    _interrupt(run)
    services.run_resume(user=run.experiment.owner, run=run)
    sink = DatabaseSink(run.pk, attempt=claimed.attempt, heartbeat_s=0.05)
    deadline = time.monotonic() + 5
    while not sink.claim_lost.is_set() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sink.claim_lost.is_set()
    with pytest.raises(services.RunClaimLost):
        sink.emit(event(1, EventKind.PROGRESS, 128, **progress_data(128)))
    sink.close()
    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED and Metric.objects.filter(run=run).count() == 0


def test_a_frozen_worker_whose_interrupted_run_was_deleted_stops_writing(run):
    claimed = services.run_claim(run_id=run.pk, worker_host="w", task_id="t")
    _interrupt(run)
    sink = DatabaseSink(run.pk, attempt=claimed.attempt, heartbeat_s=None, flush_interval_s=3600)
    services.run_delete(user=run.experiment.owner, run=run)
    sink.emit(event(1, EventKind.PROGRESS, 128, **progress_data(128)))
    with pytest.raises(services.RunClaimLost):
        sink.flush()
    assert sink.claim_lost.is_set() and Metric.objects.count() == 0
    sink.close()


def test_a_resume_forgets_what_the_crashed_attempt_stored_after_its_checkpoint(run):
    """Attempt 1 reports rollouts 1-10 (128 frames each) with a checkpoint after the 4th and
    dies; attempt 2 resumes from that checkpoint and reports rollouts 5-10 again. Each timestep
    keeps one point, the resumed attempt's, and the rollups are those of the rows left."""
    from experiments_app import rollups
    from experiments_app.models import MetricRollup

    def rollout(seq: int, i: int, mean_return: float) -> list:
        return [event(seq, EventKind.HINT, 128 * i, **hint_data()),
                event(seq + 1, EventKind.METRICS, 128 * i, **metrics_data(mean_return)),
                event(seq + 2, EventKind.PROGRESS, 128 * i, **progress_data(128 * i, 1280))]

    first = [event(1, EventKind.RUN_STARTED, 0, config={"total_timesteps": 1280}, resumed=False, start_timestep=0,
                   checkpoint_seq=None)]
    for i in range(1, 11):
        first += rollout(len(first) + 1, i, 0.1)
        if i == 4:
            checkpoint_seq = len(first) + 1
            first.append(event(checkpoint_seq, EventKind.CHECKPOINT, 512, path="/runs/ckpt", timesteps=512))
    services.run_record_events(run_id=run.pk, events=first)
    resume_seq = len(first) + 1
    second = [event(resume_seq, EventKind.RUN_STARTED, 512, config={"total_timesteps": 1280}, resumed=True,
                    start_timestep=512, checkpoint_seq=checkpoint_seq)]
    services.run_record_events(run_id=run.pk, events=second)
    run.refresh_from_db()
    assert run.timesteps == 512, "back at the checkpoint's frames until the next progress"
    assert selectors.run_state(run=run)["rewound_attempt"] == run.attempt, "open pages load again"
    assert not Metric.objects.filter(run=run, seq__gt=checkpoint_seq).exists()
    assert not Hint.objects.filter(run=run, seq__gt=checkpoint_seq).exists()
    for i in range(5, 11):
        services.run_record_events(run_id=run.pk, events=rollout(resume_seq + 1 + 3 * (i - 5), i, 0.9))

    for kind in ("metrics", "progress"):
        timesteps = list(Metric.objects.filter(run=run, kind=kind).order_by("seq").values_list("timestep", flat=True))
        assert timesteps == [128 * i for i in range(1, 11)], kind
    returns = Metric.objects.filter(run=run, kind="metrics").order_by("seq").values_list("mean_return", flat=True)
    assert list(returns) == [0.1] * 4 + [0.9] * 6, "the redone rollouts are the resumed attempt's"
    def chunks() -> list[tuple]:
        rows = MetricRollup.objects.filter(run=run).values_list("metric", "level", "chunk", "n", "value_sum")
        return sorted((*row[:4], round(row[4], 9)) for row in rows)

    stored = chunks()
    MetricRollup.objects.filter(run=run).delete()
    rollups.metric_rollups_refresh(run_id=run.pk, first_seq=1, last_seq=Run.objects.get(pk=run.pk).last_seq)
    assert stored == chunks() and stored, "rollups as if the crashed attempt's rows never were"
