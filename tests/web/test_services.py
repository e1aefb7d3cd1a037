from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from experiments_app import services
from experiments_app.models import Experiment, Membership, Run, Team
from tests.web.helpers import PASSWORD, small_hyperparameters


def create(owner, team, **overrides):
    kwargs = dict(
        owner=owner, team=team, name="exp", env_id="BabyAI-GoToRedBallNoDists-v0", mode="ppo",
        teacher_model="", hyperparameters=small_hyperparameters(), seeds=[0, 1, 2],
    )
    return services.experiment_create(**{**kwargs, **overrides})


def test_experiment_create_makes_one_queued_run_per_seed_and_enqueues_after_commit(
    alice, team_a, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        experiment = create(alice, team_a)
        assert queued == [], "nothing is sent before the transaction commits"
    for callback in callbacks:
        callback()
    runs = list(experiment.runs.order_by("seed"))
    assert [r.seed for r in runs] == [0, 1, 2]
    assert all(r.status == Run.Status.QUEUED and r.total_timesteps == 2048 for r in runs)
    assert queued == [(r.pk, r.task_id) for r in runs]


def test_experiment_create_refuses_a_team_the_owner_is_not_in(alice, team_b, queued):
    with pytest.raises(PermissionDenied):
        create(alice, team_b)


def test_experiment_create_validates_hyperparameters_and_teacher(alice, team_a, queued):
    with pytest.raises(ValidationError) as exc:
        create(alice, team_a, hyperparameters=small_hyperparameters(gamma=2.0))
    assert "gamma: must be between 0 and 1" in str(exc.value)
    with pytest.raises(ValidationError, match="needs a teacher model"):
        create(alice, team_a, mode="bidirectional", teacher_model="")
    with pytest.raises(ValidationError):
        create(alice, team_a, seeds=[1, 1])


def test_queued_and_running_runs_are_capped_per_user_at_launch_and_resume(alice, team_a, bob, team_b, queued, settings):
    settings.MAX_ACTIVE_RUNS_PER_USER = 4
    first = create(alice, team_a)
    running, interrupted, _ = first.runs.order_by("seed")
    Run.objects.filter(pk=running.pk).update(status=Run.Status.RUNNING)
    with pytest.raises(ValidationError, match=r"alice has 3 run\(s\) queued or running, and one user may have at most 4 "
                                              r"\(BIDIR_MAX_ACTIVE_RUNS_PER_USER\): 2 more cannot be queued") as refused:
        create(alice, team_a, name="two more", seeds=[0, 1])
    assert refused.value.code == "run_cap" and not Experiment.objects.filter(name="two more").exists()
    Run.objects.filter(pk=interrupted.pk).update(status=Run.Status.INTERRUPTED)
    create(alice, team_a, name="two more", seeds=[0, 1])
    create(bob, team_b, seeds=[0, 1, 2])  # the cap is each user's
    create(alice, team_a, name="imported", seeds=[0, 1], enqueue=False).delete()  # runs trained elsewhere: no cap

    with pytest.raises(ValidationError, match="at most 4"):
        services.run_resume(user=alice, run=interrupted)
    Run.objects.filter(pk=running.pk).update(status=Run.Status.SUCCEEDED)
    assert services.run_resume(user=alice, run=interrupted).status == Run.Status.QUEUED, "a finished run frees its place"
    settings.MAX_ACTIVE_RUNS_PER_USER = 0
    create(alice, team_a, name="uncapped", seeds=list(range(16)))


def test_teacher_model_is_dropped_for_modes_without_llm(alice, team_a, queued):
    assert create(alice, team_a, mode="oracle", teacher_model="some-model").teacher_model == ""


def test_stop_cancels_a_queued_run_and_flags_a_running_one(run):
    stopped = services.run_request_stop(run=run)
    assert stopped.status == Run.Status.CANCELLED and stopped.stop_requested and stopped.finished_at
    other = run.experiment.runs.get(seed=1)
    Run.objects.filter(pk=other.pk).update(status=Run.Status.RUNNING)
    stopping = services.run_request_stop(run=other)
    assert stopping.status == Run.Status.RUNNING and stopping.stop_requested


def test_claim_is_exclusive_while_the_heartbeat_is_fresh(run):
    claimed = services.run_claim(run_id=run.pk, worker_host="w1", task_id="t")
    assert claimed.status == Run.Status.RUNNING and claimed.worker_host == "w1" and claimed.started_at
    assert services.run_claim(run_id=run.pk, worker_host="w2", task_id="t") is None, "a redelivery must not train twice"
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert services.run_claim(run_id=run.pk, worker_host="w2", task_id="t").worker_host == "w2"


def test_claim_refuses_finished_and_cancelled_runs(run):
    services.run_request_stop(run=run)
    assert services.run_claim(run_id=run.pk, worker_host="w", task_id="t") is None
    other = run.experiment.runs.get(seed=1)
    Run.objects.filter(pk=other.pk).update(status=Run.Status.SUCCEEDED)
    assert services.run_claim(run_id=other.pk, worker_host="w", task_id="t") is None


def test_mark_interrupted_only_touches_stale_running_runs(experiment):
    stale, fresh = experiment.runs.order_by("seed")
    now = timezone.now()
    Run.objects.filter(pk=stale.pk).update(status=Run.Status.RUNNING, heartbeat_at=now - timedelta(minutes=10))
    Run.objects.filter(pk=fresh.pk).update(status=Run.Status.RUNNING, heartbeat_at=now)
    assert services.run_mark_interrupted() == [stale.pk]
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == Run.Status.INTERRUPTED and fresh.status == Run.Status.RUNNING


def test_resume_requeues_interrupted_runs_only(alice, run, queued, django_capture_on_commit_callbacks):
    with pytest.raises(ValidationError):
        services.run_resume(user=alice, run=run)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.INTERRUPTED, error="lost")
    with django_capture_on_commit_callbacks(execute=True):
        resumed = services.run_resume(user=alice, run=run)
    assert resumed.status == Run.Status.QUEUED and resumed.error == ""
    assert queued[-1] == (run.pk, resumed.task_id)


def test_a_run_whose_worker_died_while_it_was_stopping_trains_again_after_resume(alice, run):
    services.run_claim(run_id=run.pk, worker_host="w1", task_id="t1")
    services.run_request_stop(run=run)  # running: it would stop at its next rollout boundary
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))  # ...but its worker died
    assert services.run_mark_interrupted() == [run.pk]
    resumed = services.run_resume(user=alice, run=run)
    assert resumed.status == Run.Status.QUEUED and not resumed.stop_requested
    claimed = services.run_claim(run_id=run.pk, worker_host="w2", task_id="t2")
    assert claimed is not None and claimed.status == Run.Status.RUNNING and claimed.worker_host == "w2"


def test_without_a_broker_nothing_is_queued_or_created(alice, team_a):
    """memory:// (the test settings'; REDIS_URL unset, no `make run` beside): no worker would
    ever receive the task."""
    with pytest.raises(ValidationError, match="no broker to queue the run on"):
        create(alice, team_a, name="lost")
    assert not Run.objects.filter(experiment__name="lost").exists()
    run = create(alice, team_a, name="imported", enqueue=False).runs.first()
    Run.objects.filter(pk=run.pk).update(status=Run.Status.INTERRUPTED)
    with pytest.raises(ValidationError, match="no broker to queue the run on"):
        services.run_resume(user=alice, run=run)
    assert Run.objects.get(pk=run.pk).status == Run.Status.INTERRUPTED


def test_user_create_with_team_makes_a_team_admin_who_can_log_in(db, client):
    user = services.user_create_with_team(username="carol", password=PASSWORD, team_name="C")
    assert Membership.objects.get(user=user, team=Team.objects.get(name="C")).role == Membership.Role.ADMIN
    # Through the login page: the throttling backend (django-axes) needs the request.
    assert client.post("/accounts/login/", {"username": "carol", "password": PASSWORD}).status_code == 302
    with pytest.raises(ValidationError):
        services.user_create_with_team(username="carol", password=PASSWORD, team_name="C")
    with pytest.raises(ValidationError):
        services.user_create_with_team(username="dave", password="123", team_name="C")


def test_a_restarted_worker_interrupts_its_own_runs_even_with_fresh_heartbeats(experiment):
    mine, other = experiment.runs.order_by("seed")
    Run.objects.filter(pk=mine.pk).update(status=Run.Status.RUNNING, heartbeat_at=timezone.now(), worker_host="local@vm")
    Run.objects.filter(pk=other.pk).update(status=Run.Status.RUNNING, heartbeat_at=timezone.now(), worker_host="w2@vm")
    assert services.run_mark_interrupted(worker_host="local@vm") == [mine.pk]
    assert Run.objects.get(pk=other.pk).status == Run.Status.RUNNING


def test_worker_ready_signal_marks_the_workers_runs(experiment):
    from types import SimpleNamespace

    from workers import tasks

    run = experiment.runs.first()
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING, heartbeat_at=timezone.now(), worker_host="local@vm")
    tasks._on_worker_ready(sender=SimpleNamespace(hostname="local@vm"))
    assert Run.objects.get(pk=run.pk).status == Run.Status.INTERRUPTED
