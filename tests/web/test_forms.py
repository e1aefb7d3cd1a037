import pytest

from experiments_app.forms import HP_PREFIX, LaunchForm, parse_seeds, parse_tags
from experiments_app.hyperparameters import hyperparameter_defaults
from workers.teachers import available_models


def form_data(team, **overrides) -> dict:
    data = {
        "name": "my experiment", "team": team.pk, "description": "", "env_id": "BabyAI-GoToRedBallNoDists-v0",
        "mode": "ppo", "teacher_model": "", "seeds": "0-2", "tags": "baseline, ppo", "notes": "",
        **{HP_PREFIX + k: v for k, v in hyperparameter_defaults().items()},
    }
    data.update(overrides)
    return data


def test_a_valid_form_yields_service_arguments(alice, team_a):
    form = LaunchForm(form_data(team_a), user=alice)
    assert form.is_valid(), form.errors
    data = form.cleaned_data
    assert data["seeds"] == [0, 1, 2] and data["tags"] == ["baseline", "ppo"]
    assert data["hyperparameters"] == hyperparameter_defaults()
    assert isinstance(data["hyperparameters"]["learning_rate"], float)


def test_choices_come_from_what_is_installed(alice):
    form = LaunchForm(user=alice)
    assert "BabyAI-GoToRedBallNoDists-v0" in dict(form.fields["env_id"].choices)
    assert set(dict(form.fields["teacher_model"].choices)) == {""} | set(available_models())
    assert form.fields[HP_PREFIX + "gamma"].help_text == "Discount factor."
    assert dict(form.fields["mode"].choices)["ppo"] == "ppo: The student alone."


def test_out_of_range_and_malformed_values_are_reported_per_field(alice, team_a):
    form = LaunchForm(form_data(team_a, hp_gamma="1.5", hp_n_envs="0", hp_learning_rate="fast", hp_policy="rnn"), user=alice)
    assert not form.is_valid()
    assert form.errors["hp_gamma"] == ["Ensure this value is less than or equal to 1.0."]
    assert form.errors["hp_n_envs"] == ["Ensure this value is greater than or equal to 1."]
    assert form.errors["hp_learning_rate"] == ["Enter a number."]
    assert "hp_policy" in form.errors


def test_cross_field_rollout_errors(alice, team_a):
    form = LaunchForm(form_data(team_a, hp_total_timesteps="100", hp_batch_size="4096"), user=alice)
    assert not form.is_valid()
    assert "at least one rollout" in form.errors["hp_total_timesteps"][0]
    assert "must not exceed one rollout" in form.errors["hp_batch_size"][0]


def test_llm_modes_need_a_teacher_model(alice, team_a):
    form = LaunchForm(form_data(team_a, mode="bidirectional", teacher_model=""), user=alice)
    assert not form.is_valid() and "teacher_model" in form.errors


def test_unknown_level_teacher_and_foreign_team_are_refused(alice, team_a, team_b):
    form = LaunchForm(form_data(team_b, env_id="MiniGrid-Nope-v0", teacher_model="../../etc/passwd", mode="teacher"), user=alice)
    assert not form.is_valid()
    assert {"team", "env_id", "teacher_model"} <= set(form.errors)


def test_oracle_mode_needs_a_level_the_babyai_bot_can_play(alice, team_a):
    form = LaunchForm(form_data(team_a, mode="oracle", env_id="MiniGrid-Empty-5x5-v0"), user=alice)
    assert not form.is_valid() and "BabyAI bot" in form.errors["mode"][0]
    assert LaunchForm(form_data(team_a, mode="oracle"), user=alice).is_valid()


@pytest.mark.parametrize("raw, seeds", [("0", [0]), ("3, 1", [3, 1]), ("0-3", [0, 1, 2, 3]), (" 1 , 5-6 ,", [1, 5, 6])])
def test_parse_seeds(raw, seeds):
    assert parse_seeds(raw) == seeds


@pytest.mark.parametrize("raw, message", [
    ("", "at least one"), ("a", "not a seed"), ("5-2", "backwards"), ("0-99", "at most"), ("1,1", "once"),
    ("-1", "not a seed"),
])
def test_parse_seeds_errors(raw, message):
    from django import forms

    with pytest.raises(forms.ValidationError, match=message):
        parse_seeds(raw)


def test_parse_tags_dedups_and_limits():
    assert parse_tags("a, b, a,,") == ["a", "b"]
    from django import forms

    with pytest.raises(forms.ValidationError):
        parse_tags("x" * 41)


def test_clone_initial_reproduces_the_experiment(alice, experiment):
    form = LaunchForm(LaunchForm.initial_from(experiment) | {"team": experiment.team_id}, user=alice)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["hyperparameters"] == experiment.hyperparameters
    assert form.cleaned_data["seeds"] == [0, 1] and form.cleaned_data["name"] == "alice's experiment (copy)"
