"""Runs whose training task never reached a worker (issue 15, item 5): a launch while the broker
is down is refused with a message; a task the broker refuses after the commit leaves the run
"waiting: no task"; ``run_requeue_lost`` sends again the tasks that were never sent or that
the broker no longer holds. The broker is stood in for (``queued``); a real Redis losing its
data is in tests/reliability/test_faults_broker.py."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from experiments_app import broker, selectors, services
from experiments_app.models import Run
from tests.web.helpers import small_hyperparameters

pytestmark = pytest.mark.django_db(transaction=True)


def launch(owner, team, name: str = "exp", seeds=(0, 1)):
    return services.experiment_create(
        owner=owner, team=team, name=name, env_id="BabyAI-GoToRedBallNoDists-v0", mode="ppo", teacher_model="",
        hyperparameters=small_hyperparameters(), seeds=list(seeds),
    )


def test_a_launch_while_the_broker_is_down_is_refused_with_a_message(alice, team_a, queued, monkeypatch, client):
    monkeypatch.setattr(broker, "answers", lambda: False)
    with pytest.raises(ValidationError, match="the broker .* is not answering, so nothing was queued"):
        launch(alice, team_a, name="refused")
    assert not Run.objects.filter(experiment__name="refused").exists() and queued == []

    from tests.web.test_launch_form import posted_inputs  # the form as a browser posts it

    client.force_login(alice)
    data = {**posted_inputs(client.get(reverse("experiments:launch")).content.decode(), "launch-form"), "name": "refused"}
    response = client.post(reverse("experiments:launch"), data)
    assert response.status_code == 503 and b"is not answering, so nothing was queued" in response.content
    assert not Run.objects.filter(experiment__name="refused").exists()


def test_a_task_the_broker_refuses_after_the_commit_leaves_its_run_waiting_and_the_others_queued(
        alice, team_a, queued, monkeypatch):
    sent = []
    monkeypatch.setattr(broker, "send_training_task", lambda run_id, task_id: sent.append(run_id) or len(sent) > 1)
    experiment = launch(alice, team_a)
    first, second = experiment.runs.order_by("seed")
    assert sent == [first.pk, second.pk], "a refused task does not keep the next seeds from being sent"
    assert first.task_id == "" and selectors.run_state(run=first)["no_task"]
    assert second.task_id and not selectors.run_state(run=second)["no_task"]

    assert services.run_requeue_lost() == [first.pk], "sent again once the broker answers"
    first.refresh_from_db()
    assert first.task_id and sent[-1] == first.pk and not selectors.run_state(run=first)["no_task"]


def test_a_task_the_broker_lost_is_sent_again_once_and_one_it_holds_is_left_alone(
        alice, team_a, queued, monkeypatch, settings):
    settings.LOST_TASK_AFTER_S = 60
    lost, held = launch(alice, team_a).runs.order_by("seed")
    young = launch(alice, team_a, name="young", seeds=[0]).runs.get()
    Run.objects.filter(pk__in=[lost.pk, held.pk]).update(queued_at=timezone.now() - timedelta(seconds=61))
    held.refresh_from_db()
    monkeypatch.setattr(broker, "held_task_ids", lambda: {held.task_id})
    queued.clear()

    assert services.run_requeue_lost() == [lost.pk]
    lost.refresh_from_db()
    assert queued == [(lost.pk, lost.task_id)] and lost.queued_at > timezone.now() - timedelta(seconds=5)
    assert services.run_requeue_lost() == [], "just sent again: not lost before LOST_TASK_AFTER_S more"
    assert Run.objects.get(pk=young.pk).task_id == young.task_id, "sent less than LOST_TASK_AFTER_S ago"


def test_nothing_is_sent_again_while_the_broker_cannot_say_or_for_runs_never_queued(
        alice, team_a, queued, monkeypatch):
    run = launch(alice, team_a, seeds=[0]).runs.get()
    Run.objects.filter(pk=run.pk).update(task_id="")
    imported = services.experiment_create(
        owner=alice, team=team_a, name="imported", env_id="BabyAI-GoToRedBallNoDists-v0", mode="ppo",
        teacher_model="", hyperparameters=small_hyperparameters(), seeds=[0], enqueue=False,
    ).runs.get()
    monkeypatch.setattr(broker, "answers", lambda: False)
    monkeypatch.setattr(broker, "held_task_ids", lambda: None)
    queued.clear()
    assert services.run_requeue_lost() == [] and queued == []
    monkeypatch.setattr(broker, "answers", lambda: True)
    assert services.run_requeue_lost() == [run.pk]
    assert Run.objects.get(pk=imported.pk).task_id == "", "a run created unqueued (an import) is never sent"
