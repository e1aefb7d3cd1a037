"""``manage.py launch``: the form's validation, the service's creation, run ids on stdout."""

import io

import pytest
from django.core.management import CommandError, call_command

from experiments_app.models import Experiment, Run


def launch(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("launch", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


BASE = ["--name", "cli", "--team", "A", "--user", "alice", "--env", "BabyAI-GoToRedBallNoDists-v0", "--mode", "ppo"]


def test_launch_prints_the_run_ids_and_queues_them(alice, queued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        out, err = launch(*BASE, "--seeds", "0,1,2", "--set", "total_timesteps=4096", "--set", "learning_rate=0.001", "--tags", "cli")
    experiment = Experiment.objects.get(name="cli")
    ids = [int(line) for line in out.split()]
    assert ids == list(experiment.runs.order_by("seed").values_list("pk", flat=True)) and len(ids) == 3
    assert sorted(r for r, _ in queued) == sorted(ids)
    assert experiment.hyperparameters["total_timesteps"] == 4096 and experiment.hyperparameters["learning_rate"] == 0.001
    assert experiment.tags == ["cli"] and experiment.owner == alice and "launched experiment" in err


@pytest.mark.parametrize("extra, message", [
    (["--set", "gamma=7"], "gamma: Ensure this value is less than or equal to 1.0"),
    (["--set", "nonsense=1"], "not a hyperparameter"),
    (["--set", "gamma"], "expected key=value"),
    (["--seeds", "3-1"], "seeds: range '3-1' runs backwards"),
    (["--mode", "bidirectional", "--teacher-model", "no-such-model"], "teacher_model: Select a valid choice"),
    (["--mode", "sideways"], "mode: Select a valid choice"),
    (["--set", "n_envs=64", "--set", "n_steps=8192"], "total_timesteps: must be at least one rollout"),
    (["--set", "eval_interval=1", "--set", "eval_episodes=1000"], "eval_interval: evaluation would play up to 196,000 episodes"),
])
def test_invalid_launches_fail_with_the_forms_message(alice, queued, extra, message):
    with pytest.raises(CommandError, match=message):
        launch(*BASE, *extra)
    assert not Run.objects.exists() and queued == []


def test_a_launch_over_the_run_cap_fails_saying_so(alice, queued, settings):
    settings.MAX_ACTIVE_RUNS_PER_USER = 2
    with pytest.raises(CommandError, match=r"alice has 0 run\(s\) queued or running, and one user may have at most 2"):
        launch(*BASE, "--seeds", "0-2")
    assert not Run.objects.exists() and queued == []


def test_without_a_broker_the_launch_is_refused_saying_why(alice):
    with pytest.raises(CommandError, match="no broker to queue the run on.*Start `make run`"):
        launch(*BASE)
    assert not Experiment.objects.exists()


def test_user_must_exist_and_be_in_the_team(alice, bob, queued):
    with pytest.raises(CommandError, match="no user 'nobody'"):
        launch(*[a if a != "alice" else "nobody" for a in BASE])
    with pytest.raises(CommandError, match="not a member of a team named 'A'"):
        launch(*[a if a != "alice" else "bob" for a in BASE])


def test_a_failed_launch_exits_non_zero(alice):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "manage.py", "launch", "--name", "x"], cwd=root, capture_output=True, text=True)
    assert result.returncode != 0 and "required" in result.stderr
