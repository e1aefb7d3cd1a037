"""Fixtures for the web tests: users in two teams, a launched experiment, a recorder for the
tasks that would be queued, and a clean in-memory channel layer for the tests that use one."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from experiments_app import services
from experiments_app.models import Membership, Team
from tests.web.helpers import make_user, small_hyperparameters


@pytest.fixture
def queued(monkeypatch) -> list[tuple[int, str]]:
    """(run id, task id) of every train_run task queued, instead of sending it to a broker: it
    stands in for one (the test settings' ``memory://`` is none, and queueing there is refused)."""
    from experiments_app import broker

    monkeypatch.setattr(broker, "known", lambda: True)
    monkeypatch.setattr(broker, "answers", lambda: True)
    sent: list[tuple[int, str]] = []
    monkeypatch.setattr(broker, "send_training_task", lambda run_id, task_id: sent.append((run_id, task_id)) or True)
    return sent


@pytest.fixture
def clean_channel_layer():
    """Empties the in-memory channel layer after the test, so no message leaks into the next."""
    yield
    layer = get_channel_layer()
    async_to_sync(layer.flush)()


@pytest.fixture
def team_a(db) -> Team:
    return Team.objects.create(name="A")


@pytest.fixture
def team_b(db) -> Team:
    return Team.objects.create(name="B")


@pytest.fixture
def alice(team_a):
    return make_user("alice", team_a, Membership.Role.ADMIN)


@pytest.fixture
def bob(team_b):
    return make_user("bob", team_b)


@pytest.fixture
def experiment(alice, team_a, queued):
    return services.experiment_create(
        owner=alice,
        team=team_a,
        name="alice's experiment",
        env_id="BabyAI-GoToRedBallNoDists-v0",
        mode="ppo",
        teacher_model="",
        hyperparameters=small_hyperparameters(),
        seeds=[0, 1],
    )


@pytest.fixture
def run(experiment):
    return experiment.runs.get(seed=0)


