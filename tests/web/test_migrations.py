"""Data migrations on rows written before them."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from experiments_app.hyperparameters import hyperparameter_defaults, hyperparameters_validate

BEFORE, AFTER = ("experiments_app", "0008_run_rewound_attempt"), ("experiments_app", "0009_hint_plan")


@pytest.mark.django_db(transaction=True)
def test_old_experiments_get_the_action_guidance_and_stay_valid():
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    apps = executor.loader.project_state([BEFORE]).apps
    user = apps.get_model("auth", "User").objects.create(username="old")
    team = apps.get_model("experiments_app", "Team").objects.create(name="old team")
    old = {k: v for k, v in hyperparameter_defaults().items() if k not in ("guidance_kind", "subgoal_shaping")}
    experiment = apps.get_model("experiments_app", "Experiment").objects.create(
        name="before subgoals", owner=user, team=team, env_id="BabyAI-GoToRedBallNoDists-v0", mode="ppo",
        hyperparameters=old)
    executor = MigrationExecutor(connection)
    executor.migrate([AFTER])
    apps = executor.loader.project_state([AFTER]).apps
    values = apps.get_model("experiments_app", "Experiment").objects.get(pk=experiment.pk).hyperparameters
    assert values["guidance_kind"] == "actions" and values["subgoal_shaping"] == 1.0
    assert hyperparameters_validate(values) == {}
