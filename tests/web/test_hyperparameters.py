from dataclasses import fields

from experiments_app.hyperparameters import (
    CHOICES,
    OWN_FIELDS,
    RANGES,
    experiment_problems,
    hyperparameter_defaults,
    hyperparameter_fields,
    hyperparameters_validate,
    run_config,
)
from workers.config import Mode, RunConfig


def test_every_runconfig_field_is_either_own_or_a_hyperparameter_with_a_range_or_choices():
    names = {name for name, *_ in hyperparameter_fields()}
    assert names | OWN_FIELDS == {f.name for f in fields(RunConfig)}
    assert names - set(RANGES) == set(CHOICES) == {"policy", "guidance_kind"}


def test_the_guidance_kind_is_a_choice_stored_as_its_value():
    assert hyperparameter_defaults()["guidance_kind"] == "actions"
    assert hyperparameters_validate({**hyperparameter_defaults(), "guidance_kind": "plans"}) == {
        "guidance_kind": "must be one of actions, subgoals"}
    config = run_config(env_id="BabyAI-UnlockLocal-v0", mode="oracle", teacher_model="", seed=0,
                        hyperparameters={**hyperparameter_defaults(), "guidance_kind": "subgoals"})
    assert config.guidance_kind.value == "subgoals" and config.problems() == {}
    teacher = run_config(env_id="BabyAI-UnlockLocal-v0", mode="teacher", teacher_model="x", seed=0,
                         hyperparameters={**hyperparameter_defaults(), "guidance_kind": "subgoals"})
    assert "guidance_kind" in teacher.problems()


def test_defaults_are_valid():
    assert hyperparameters_validate(hyperparameter_defaults()) == {}


def test_errors_name_the_field_and_the_reason():
    values = {**hyperparameter_defaults(), "gamma": 1.5, "n_envs": "4", "bogus": 1, "policy": "rnn"}
    del values["clip_range"]
    errors = hyperparameters_validate(values)
    assert errors["gamma"] == "must be between 0 and 1"
    assert errors["n_envs"] == "must be of type int"
    assert errors["bogus"] == "is not a hyperparameter"
    assert errors["clip_range"] == "is missing"
    assert "cnn" in errors["policy"]


def test_ints_are_accepted_for_floats_but_not_bools_for_ints():
    assert hyperparameters_validate({**hyperparameter_defaults(), "gamma": 1}) == {}
    assert "n_epochs" in hyperparameters_validate({**hyperparameter_defaults(), "n_epochs": True})


def test_rollout_size_is_checked_across_fields_by_the_engines_rule():
    errors = experiment_problems(
        env_id="BabyAI-GoToRedBallNoDists-v0", mode="ppo", teacher_model="",
        hyperparameters={**hyperparameter_defaults(), "total_timesteps": 100, "batch_size": 4096},
    )
    assert "at least one rollout" in errors["total_timesteps"]
    assert "must not exceed one rollout" in errors["batch_size"]


def test_run_config_combines_experiment_fields_and_seed():
    config = run_config(
        env_id="BabyAI-GoToRedBallNoDists-v0", mode="ppo", teacher_model="", seed=3,
        hyperparameters={**hyperparameter_defaults(), "n_envs": 2},
    )
    assert config.seed == 3 and config.mode == Mode.PPO and config.n_envs == 2
    assert config.teacher_model == RunConfig().teacher_model
