"""What a valid run is lives in one place, ``RunConfig.problems``: the engine, the launch form,
the model's ``clean`` (``manage.py launch``, ``import_study``) all ask it, and report its answer."""

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from experiments_app import services
from experiments_app.forms import LaunchForm
from experiments_app.hyperparameters import hyperparameter_defaults
from tests.web.test_forms import form_data
from workers.config import Mode, RunConfig
from workers.engine import train
from workers.events import ListSink

SENTINEL = "the one rule says no"


@pytest.fixture
def one_rule_says_no(monkeypatch):
    monkeypatch.setattr(RunConfig, "problems", lambda self: {"mode": SENTINEL, "n_steps": SENTINEL})


def test_the_rules_themselves():
    assert RunConfig().problems() == {}
    assert set(RunConfig(total_timesteps=100, batch_size=4096).problems()) == {"total_timesteps", "batch_size"}
    assert "BabyAI bot" in RunConfig(mode=Mode.ORACLE, env_id="MiniGrid-Empty-5x5-v0").problems()["mode"]
    assert RunConfig(mode=Mode.UNIDIRECTIONAL, teacher_model="").problems() == {"teacher_model": "the unidirectional mode needs a teacher model"}
    assert set(RunConfig(env_id="BabyAI-Nope-v0", policy="rnn").problems()) == {"env_id", "policy"}
    with pytest.raises(ValueError, match="total_timesteps: must be at least one rollout"):
        RunConfig(total_timesteps=1).validate()


def test_evaluation_may_not_play_more_episodes_than_training_plays_frames():
    # 1,000 episodes greedy and 1,000 sampled after each of 97 rollouts and at the end, for 100,000 frames.
    problems = RunConfig(eval_interval=1, eval_episodes=1000).problems()
    assert list(problems) == ["eval_interval"]
    assert problems["eval_interval"].startswith("evaluation would play up to 196,000 episodes")
    assert "98 times), more than the 100,000 frames of training" in problems["eval_interval"]
    assert list(RunConfig(total_timesteps=1024, eval_interval=0, eval_episodes=513).problems()) == ["eval_episodes"]
    assert RunConfig(total_timesteps=1024, eval_interval=0, eval_episodes=512).problems() == {}


def test_the_engine_asks_it(one_rule_says_no, tmp_path):
    with pytest.raises(ValueError, match=SENTINEL):
        train(RunConfig(mode=Mode.PPO), ListSink(), out_dir=tmp_path)


def test_the_form_asks_it(one_rule_says_no, alice, team_a):
    form = LaunchForm(form_data(team_a), user=alice)
    assert not form.is_valid()
    assert form.errors["mode"] == [SENTINEL] and form.errors["hp_n_steps"] == [SENTINEL]


def test_the_service_asks_it_for_the_command_line_and_imports(one_rule_says_no, alice, team_a, queued):
    with pytest.raises(ValidationError) as caught:
        services.experiment_create(
            owner=alice, team=team_a, name="x", env_id="BabyAI-GoToRedBallNoDists-v0", mode="ppo", teacher_model="",
            hyperparameters=hyperparameter_defaults(), seeds=[0],
        )
    assert caught.value.message_dict == {"mode": [SENTINEL], "hyperparameters": [f"n_steps: {SENTINEL}"]}
    with pytest.raises(CommandError, match=SENTINEL):
        call_command("launch", "--name", "cli", "--team", "A", "--user", "alice", "--mode", "ppo", "--env", "BabyAI-GoToRedBallNoDists-v0",
                     stdout=io.StringIO(), stderr=io.StringIO())
    assert queued == []
