"""Teacher faults at the web level: a missing or corrupt GGUF model is refused at launch with a
clear message, or fails its run before any training with one; an LLM call that hangs makes the
run go on student-only, which the run page and the API show, and the run finishes. Never a
silent hang. In this process, with the real engine and the real default model."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.exceptions import ValidationError

from experiments_app import services
from experiments_app.forms import HP_PREFIX
from experiments_app.models import Experiment, Metric, Run
from tests.web.helpers import small_hyperparameters
from workers.events import EventKind
from workers.tasks import train_run
from workers.student import GuidedPPO
from workers.teachers import DEFAULT_TEACHER, LLMTeacher

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

TINY = small_hyperparameters(
    total_timesteps=2048, n_envs=2, n_steps=64, batch_size=64, n_epochs=1, policy="mlp", eval_interval=0,
    eval_episodes=2, probe_states=5, frame_interval_s=0.0, hint_interval_s=0.05, checkpoint_interval=0,
)


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    """The only model directory, empty."""
    directory = tmp_path / "models"
    directory.mkdir()
    monkeypatch.setenv("BIDIR_MODEL_DIRS", str(directory))
    return directory


def launch_data(team, teacher_model: str) -> dict:
    return {"name": "taught", "team": team.pk, "env_id": "BabyAI-GoToRedBallNoDists-v0", "mode": "bidirectional",
            "teacher_model": teacher_model, "seeds": "0", **{HP_PREFIX + k: v for k, v in TINY.items()}}


def create(alice, team_a, teacher_model: str, **overrides) -> Experiment:
    return services.experiment_create(
        owner=alice, team=team_a, name="taught", env_id="BabyAI-GoToRedBallNoDists-v0", mode="bidirectional",
        teacher_model=teacher_model, hyperparameters={**TINY, **overrides}, seeds=[0],
    )


def test_the_launch_form_refuses_a_corrupt_model_file_with_a_clear_message(client, alice, team_a, model_dir, queued):
    (model_dir / "downloaded.gguf").write_bytes(b"<html>404 Not Found</html>\n" * 50)  # a failed download
    client.force_login(alice)
    response = client.post("/experiments/new/", launch_data(team_a, "downloaded"))
    assert response.status_code == 400
    assert "is not a GGUF model file" in response.content.decode()
    assert not Experiment.objects.exists() and not Run.objects.exists() and queued == []


def test_the_launch_form_refuses_a_model_that_is_not_there(client, alice, team_a, model_dir, queued):
    client.force_login(alice)
    response = client.post("/experiments/new/", launch_data(team_a, "deleted-model"))
    assert response.status_code == 400
    assert "deleted-model is not one of the available choices" in response.content.decode()
    assert not Experiment.objects.exists() and queued == []


@pytest.mark.parametrize("choice, reason", [
    ("missing", "neither an installed model"),
    ("{dir}/missing.gguf", "no .gguf file there"),
    ("../../etc/passwd", "neither an installed model"),
])
def test_the_launch_service_refuses_a_model_it_cannot_find(alice, team_a, model_dir, queued, choice, reason):
    with pytest.raises(ValidationError, match=reason) as refusal:
        create(alice, team_a, choice.format(dir=model_dir))
    assert set(refusal.value.message_dict) == {"teacher_model"}
    assert not Experiment.objects.exists() and queued == []


@pytest.mark.parametrize("fault, reason", [
    ("deleted after launch", "neither an installed model"),
    ("truncated", "could not load"),
])
def test_a_model_that_fails_at_run_start_fails_the_run_before_any_training_with_the_reason(
        client, alice, team_a, model_dir, queued, settings, tmp_path, fault, reason, report):
    settings.RUNS_DIR = tmp_path / "runs"
    model = model_dir / "half.gguf"
    model.write_bytes(b"GGUF" + bytes(4096))  # a GGUF header and nothing after it: passes the launch check
    run = create(alice, team_a, "half").runs.get()
    if fault == "deleted after launch":
        model.unlink()
    started = time.monotonic()
    assert train_run.apply(args=[run.pk]).get() == "failed"
    elapsed = time.monotonic() - started
    run.refresh_from_db()
    assert reason in run.error and run.timesteps == 0 and not Metric.objects.filter(run=run).exists()
    client.force_login(alice)
    assert reason in client.get(f"/api/runs/{run.pk}/").json()["error"]
    assert reason in client.get(f"/runs/{run.pk}/").content.decode()
    report(f"model {fault}: run failed after {elapsed:.1f} s, before training, with: {run.error.splitlines()[0][:160]}")


TOTAL = 6144
TIMEOUT_S = 5.0
"""Shorter than the engine's default (20 s): the test's prompt is two words, so only the
injected hang can take this long."""
ROLLOUT_PAUSE_S = 0.25
"""Each rollout's update is held this long once the LLM hangs, so that the run outlasts the
timeout on any machine: 48 rollouts of 128 frames take at least 12 s."""


def test_a_hanging_llm_call_is_shown_as_a_teacher_fault_and_the_run_finishes_student_only(
        client, alice, team_a, queued, settings, tmp_path, monkeypatch, report):
    settings.RUNS_DIR = tmp_path
    timeline: dict[str, float] = {}
    fault_seq: list[int] = []
    release = threading.Event()
    record = services.run_record_events

    def record_and_watch(*, run_id, events, attempt=None):
        record(run_id=run_id, events=events, attempt=attempt)
        kinds = {e.kind for e in events}
        if EventKind.METRICS in kinds:
            timeline.setdefault("hang", time.monotonic())  # every LLM call from now on hangs
        if EventKind.TEACHER_FAULT in kinds:
            timeline.setdefault("fault", time.monotonic())
            fault_seq.extend(e.seq for e in events if e.kind == EventKind.TEACHER_FAULT)

    def prompt(self, situation, feedback):
        """Two words, so that the real LLM answers well within the timeout even on a busy
        machine: only the injected hang may exceed it."""
        if "hang" in timeline:
            release.wait(120)
        return "Best action:"

    real_update = GuidedPPO.train

    def slow_update(self):
        if "hang" in timeline:
            time.sleep(ROLLOUT_PAUSE_S)
        real_update(self)

    monkeypatch.setattr(services, "run_record_events", record_and_watch)
    monkeypatch.setattr(LLMTeacher, "prompt", prompt)
    monkeypatch.setattr(GuidedPPO, "train", slow_update)
    # Two probe states: the teacher's warm-up answers only their situations, so that training
    # meets new ones after the first rollout and asks the (then hanging) LLM about them.
    run = create(alice, team_a, DEFAULT_TEACHER, total_timesteps=TOTAL, teacher_timeout_s=TIMEOUT_S, probe_states=2).runs.get()
    started = time.monotonic()
    try:
        status = train_run.apply(args=[run.pk]).get()
    finally:
        release.set()
    elapsed = time.monotonic() - started

    run.refresh_from_db()
    assert status == "succeeded" and run.timesteps == TOTAL
    assert f"did not answer within {TIMEOUT_S:g} s" in run.teacher_fault and len(fault_seq) == 1
    detected_s = timeline["fault"] - timeline["hang"]
    # Rollouts do not wait for the teacher: the run notices the hung call after each rollout,
    # once it has run for longer than the timeout, and goes on without the teacher.
    after = list(Metric.objects.filter(run=run, kind="metrics", seq__gt=fault_seq[0]))
    assert all(m.data["guidance_coef"] == 0.0 and m.data["teacher_accuracy"] is None for m in after), "student-only"
    client.force_login(alice)
    assert f"did not answer within {TIMEOUT_S:g} s" in client.get(f"/api/runs/{run.pk}/").json()["teacher_fault"]
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert '<p id="teacher-fault" class="warning">The teacher failed and training went on without it (student-only)' in page
    report(f"LLM hung after the first rollout: reported as a teacher fault {detected_s:.1f} s later (timeout {TIMEOUT_S:g} s), "
           f"the run went on student-only for {len(after)} rollouts and finished ({run.timesteps} frames) in {elapsed:.1f} s; "
           f"page and API show: {run.teacher_fault}")
