"""workers.tasks.train_run end to end with the real engine on a tiny ppo run, and its refusal
to train a run twice."""

import pytest
from django.utils import timezone

from experiments_app import services
from experiments_app.models import Hint, Metric, Run
from tests.web.helpers import small_hyperparameters
from workers.tasks import train_run

pytestmark = pytest.mark.django_db(transaction=True)

TINY = small_hyperparameters(
    total_timesteps=256, n_envs=2, n_steps=64, batch_size=64, n_epochs=1, eval_interval=0, eval_episodes=2,
    probe_states=5, policy="mlp", frame_interval_s=0.0, checkpoint_interval=1,
)


@pytest.fixture
def tiny_run(alice, team_a, queued, settings, tmp_path):
    settings.RUNS_DIR = tmp_path
    experiment = services.experiment_create(
        owner=alice, team=team_a, name="tiny", env_id="BabyAI-GoToRedBallNoDists-v0", mode="ppo",
        teacher_model="", hyperparameters=TINY, seeds=[0],
    )
    return experiment.runs.get()


def test_train_run_trains_and_records_everything(tiny_run, tmp_path):
    assert train_run.apply(args=[tiny_run.pk], task_id="task-1").get() == "succeeded"
    run = Run.objects.get(pk=tiny_run.pk)
    assert run.status == Run.Status.SUCCEEDED and run.finished_at and run.worker_host and run.task_id == "task-1"
    assert run.timesteps >= 256 and run.summary["timesteps"] == run.timesteps
    assert run.summary["final_eval_return"] is not None and run.checkpoint_path.startswith(str(tmp_path))
    metrics = Metric.objects.filter(run=run)
    assert metrics.filter(kind="metrics").count() == 2 and metrics.filter(kind="progress").count() == 2
    assert metrics.filter(kind="evaluation").exists()
    assert run.last_seq > metrics.order_by("-seq").first().seq, "run_finished is the last event"
    assert not Hint.objects.filter(run=run).exists(), "ppo has no teacher"
    assert (tmp_path / f"run-{run.pk}" / "summary.json").exists()


def test_a_redelivered_task_does_not_train_a_run_that_is_alive(tiny_run):
    Run.objects.filter(pk=tiny_run.pk).update(status=Run.Status.RUNNING, heartbeat_at=timezone.now(), worker_host="other")
    assert train_run.apply(args=[tiny_run.pk]).get() == "refused"
    run = Run.objects.get(pk=tiny_run.pk)
    assert run.worker_host == "other" and run.last_seq == 0


def test_a_cancelled_run_is_not_trained(tiny_run):
    services.run_request_stop(run=tiny_run)
    assert train_run.apply(args=[tiny_run.pk]).get() == "refused"


def test_a_stop_request_stops_the_run_with_a_checkpoint(tiny_run, monkeypatch):
    claim = services.run_claim

    def claim_then_user_clicks_stop(**kwargs):
        run = claim(**kwargs)
        services.run_request_stop(run=run)
        return run

    monkeypatch.setattr(services, "run_claim", claim_then_user_clicks_stop)
    assert train_run.apply(args=[tiny_run.pk]).get() == "cancelled"
    run = Run.objects.get(pk=tiny_run.pk)
    assert run.checkpoint_path and run.finished_at and run.timesteps < 256


def test_a_worker_shutdown_interrupts_and_requeues_the_run_which_then_continues(tiny_run, monkeypatch):
    from workers import tasks

    monkeypatch.setattr(tasks, "_worker_shutting_down", type(tasks._worker_shutting_down)())
    tasks._worker_shutting_down.set()
    result = train_run.apply(args=[tiny_run.pk])
    assert result.state == "REJECTED", "requeued for the next worker"
    interrupted = Run.objects.get(pk=tiny_run.pk)
    assert interrupted.status == Run.Status.INTERRUPTED
    assert interrupted.checkpoint_path and interrupted.finished_at is None
    tasks._worker_shutting_down.clear()

    assert train_run.apply(args=[tiny_run.pk]).get() == "succeeded", "the requeued task continues the run"
    run = Run.objects.get(pk=tiny_run.pk)
    assert run.timesteps >= 256 and run.last_seq > interrupted.last_seq
    seqs = list(Metric.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == sorted(set(seqs)) and min(seqs) > 0


def test_an_engine_error_marks_the_run_failed(tiny_run):
    from experiments_app.models import Experiment

    Experiment.objects.filter(pk=tiny_run.experiment_id).update(env_id="MiniGrid-DoesNotExist-v0")
    assert train_run.apply(args=[tiny_run.pk]).get() == "failed"
    run = Run.objects.get(pk=tiny_run.pk)
    assert "unknown level" in run.error and run.finished_at
