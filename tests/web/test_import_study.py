"""``manage.py import_study`` on a tiny real study: one experiment per (level, mode), one run per
seed with its events stored by the live runs' write path, never queued, idempotent, on the compare page."""

import io
import shutil

import pytest
from django.core.management import CommandError, call_command

from experiments_app.models import Experiment, Hint, Metric, Run
from study.rundir import read_events, timeline
from study.spec import RunKey
from tests.study.tiny import SPEC, TINY_LEVEL, shared_study
from workers.events import EventKind


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return shared_study(tmp_path_factory)


def import_study(directory, *extra):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_study", str(directory), "--team", "A", "--owner", "alice", *extra, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def counts():
    return Experiment.objects.count(), Run.objects.count(), Metric.objects.count(), Hint.objects.count()


def test_import_creates_an_experiment_per_mode_with_every_event(study, alice, queued):
    out, _ = import_study(study)
    experiments = Experiment.objects.order_by("name")
    assert [e.name for e in experiments] == [f"study tiny: {m} on {TINY_LEVEL.env_id}" for m in ("oracle", "ppo")]
    assert queued == [], "imported runs are never queued"
    for experiment in experiments:
        assert experiment.team.name == "A" and experiment.owner == alice and "study" in experiment.tags
        assert experiment.hyperparameters["total_timesteps"] == 256 and experiment.hyperparameters["n_envs"] == 2
        for run in experiment.runs.order_by("seed"):
            events = timeline(read_events(RunKey(TINY_LEVEL, experiment.mode, run.seed).directory(study)))
            assert run.status == Run.Status.SUCCEEDED and run.timesteps == 256
            assert run.summary["final_eval_return"] == run.final_eval_return and run.last_seq == events[-1].seq
            stored = {EventKind.METRICS, EventKind.EVALUATION, EventKind.PROGRESS}
            assert run.metrics.count() == sum(e.kind in stored for e in events)
            assert run.hints.count() == sum(e.kind == EventKind.HINT for e in events)
    assert Hint.objects.filter(run__experiment__mode="oracle").exists()
    assert out.count("2 run(s) imported") == 2


def test_a_second_import_adds_nothing(study, alice, queued):
    import_study(study)
    before = counts()
    out, _ = import_study(study)
    assert counts() == before and out.count("0 run(s) imported") == 2


def test_the_compare_page_shows_the_imported_experiments(study, alice, client, queued):
    import_study(study)
    client.force_login(alice)
    ids = ",".join(str(pk) for pk in Experiment.objects.values_list("pk", flat=True))
    data = client.get(f"/compare/?experiments={ids}&format=json").json()
    assert len(data["experiments"]) == 2 and len(data["runs"]) == 4
    assert all(any(v is not None for v in row["mean"]) for row in data["experiments"])


def test_a_mode_with_unfinished_seeds_waits(study, alice, queued, tmp_path):
    partial = tmp_path / "study"
    shutil.copytree(study, partial)
    (RunKey(TINY_LEVEL, "oracle", 1).directory(partial) / "summary.json").unlink()
    _, err = import_study(partial)
    assert [e.mode for e in Experiment.objects.all()] == ["ppo"] and "seeds [1] not done yet" in err


def test_bad_arguments_are_refused(study, alice, bob, tmp_path):
    with pytest.raises(CommandError, match="not a study's output directory"):
        import_study(tmp_path)
    with pytest.raises(CommandError, match="not a member of a team named 'A'"):
        call_command("import_study", str(study), "--team", "A", "--owner", "bob")
    assert SPEC.modes == ("ppo", "oracle") and not Experiment.objects.exists()
