"""Whole runs through workers.engine.train: every mode, sequence numbers, stop and resume,
determinism, teacher faults, and the headless command. Each test that trains is marked slow
(``make test-fast`` leaves them out)."""

import json
import subprocess
import sys
import time

import pytest

from workers.config import GuidanceKind, Mode, RunConfig
from workers.engine import train
from workers.events import EventKind, ListSink, read_jsonl
from workers.teachers import DEFAULT_TEACHER, SMOLLM2, LLMTeacher

SMALL = dict(total_timesteps=2048, n_envs=4, n_steps=128, eval_episodes=5, probe_states=40, eval_interval=1024,
             teacher_model=SMOLLM2)
"""Short runs; the LLM modes with the smallest teacher, but in the every-mode smoke test."""
SUMMARY_KEYS = {
    "env", "mode", "seed", "timesteps", "frames_to_0_9", "final_eval_return", "final_eval_success",
    "final_eval_sampled_return", "final_eval_sampled_success", "teacher_accuracy_start", "teacher_accuracy_end",
    "teacher_accuracy_end_unjudged", "llm_calls", "wall_s", "fps",
}


def run(tmp_path, **overrides):
    sink = ListSink()
    config = RunConfig(**{**SMALL, **overrides})
    summary = train(config, sink, out_dir=tmp_path)
    return summary, sink


def assert_strictly_increasing(events):
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


@pytest.mark.slow
@pytest.mark.parametrize("mode", [m.value for m in Mode])
def test_every_mode_runs_and_reports_with_the_default_teacher(tmp_path, mode):
    # The teacher alone waits for an answer in every new situation it meets: two short rollouts.
    n_envs, n_steps, budget, episodes = (2, 32, 128, 2) if mode == Mode.TEACHER.value else (4, 128, 2048, 5)
    summary, sink = run(tmp_path, mode=Mode(mode), teacher_model=RunConfig.teacher_model, total_timesteps=budget,
                        n_envs=n_envs, n_steps=n_steps, probe_states=20, eval_interval=budget // 2, eval_episodes=episodes)
    kinds = [e.kind for e in sink.events]
    assert kinds[0] == EventKind.RUN_STARTED and kinds[-1] == EventKind.RUN_FINISHED
    assert sink.events[0].seq == 1
    assert_strictly_increasing(sink.events)
    assert SUMMARY_KEYS <= set(summary) and summary["timesteps"] >= budget
    assert 0.0 <= summary["final_eval_return"] <= 1.0 and 0.0 <= summary["final_eval_sampled_return"] <= 1.0
    metrics = sink.of_kind(EventKind.METRICS)
    assert len(metrics) == budget // (n_envs * n_steps) and all(m.data["episodes"] > 0 for m in metrics)
    assert sink.of_kind(EventKind.PROGRESS)[-1].data["timesteps"] == summary["timesteps"]
    assert sink.of_kind(EventKind.EVALUATION) and sink.of_kind(EventKind.FRAME)
    frame = sink.of_kind(EventKind.FRAME)[0].data
    assert len(frame["grid"]) == frame["width"] * frame["height"] * 3
    if Mode(mode).uses_llm:
        assert summary["teacher_model"] == DEFAULT_TEACHER
        assert 0 <= summary["teacher_accuracy_start"] <= 1 and summary["llm_calls"] > 0
        hint = sink.of_kind(EventKind.HINT)[0].data
        assert set(hint["distribution"]) == {"left", "right", "forward"} and hint["situation"]
    else:
        assert summary["llm_calls"] == 0 and summary["teacher_accuracy_start"] is None
    if Mode(mode) == Mode.UNIDIRECTIONAL:
        assert summary["teacher_accuracy_end"] == summary["teacher_accuracy_start"], "no feedback, no change"
    if Mode(mode).guides_student:
        coefs = [m.data["guidance_coef"] for m in metrics]
        assert coefs[0] > coefs[-1] >= 0, "the guidance weight is annealed"
    summary_file = json.loads((tmp_path / "summary.json").read_text())
    assert summary_file == json.loads(json.dumps(summary))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["oracle", "bidirectional"])  # (unidirectional: the same planner, no memory)
def test_the_guiding_modes_run_with_subgoal_guidance_on_a_door_level(tmp_path, mode):
    summary, sink = run(tmp_path, env_id="BabyAI-UnlockLocal-v0", mode=Mode(mode), guidance_kind=GuidanceKind.SUBGOALS,
                        teacher_model=RunConfig.teacher_model, hint_interval_s=0.001, total_timesteps=1024,
                        probe_states=20)
    assert summary["guidance_kind"] == "subgoals" and sink.events[-1].kind == EventKind.RUN_FINISHED
    hints = sink.of_kind(EventKind.HINT)
    plans = [h.data["plan"] for h in hints]
    assert plans and all(set(p) == {"state", "subgoal", "reached", "feedback"} for p in plans)
    assert any(p["subgoal"] for p in plans) and all(p["state"].startswith("Mission: open the door.") for p in plans)
    assert any(h.data["weight"] == 1.0 and h.data["teacher_action"] for h in hints), "the way to the subgoal is advised"
    metrics = sink.of_kind(EventKind.METRICS)
    assert metrics[0].data["guidance_loss"] is not None
    # The recorded episodes are on the level's reward, not the shaped one.
    assert all(m.data["mean_return"] is None or 0 <= m.data["mean_return"] <= 1 for m in metrics)
    if mode == "oracle":
        assert summary["llm_calls"] == 0 and summary["teacher_accuracy_start"] is None
    else:
        assert 0 <= summary["teacher_accuracy_start"] <= 1 and summary["llm_calls"] > 0
        assert metrics[-1].data["teacher_accuracy"] is not None and "plan_loops" in metrics[-1].data


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["BabyAI-GoToRedBall-v0", "BabyAI-GoToLocal-v0", "BabyAI-UnlockLocal-v0", "MiniGrid-DoorKey-5x5-v0"])
def test_other_levels_share_the_code_path(tmp_path, env_id):
    summary, sink = run(tmp_path, env_id=env_id, mode=Mode.PPO, total_timesteps=1024, eval_interval=0)
    assert summary["env"] == env_id and summary["timesteps"] == 1024
    assert sink.events[0].data["actions"][:3] == ["left", "right", "forward"]


@pytest.mark.slow
def test_evaluation_plays_the_episodes_the_config_budgets(tmp_path):
    # 512-frame rollouts, an evaluation due every 700 frames: after rollouts 2 and 3, and at the end.
    config = RunConfig(**{**SMALL, "mode": Mode.PPO, "eval_interval": 700})
    _, sink = run(tmp_path, mode=Mode.PPO, eval_interval=700)
    assert [e.timestep for e in sink.of_kind(EventKind.EVALUATION)] == [1024, 1536, 2048]
    assert config.evaluation_episodes == 3 * 2 * SMALL["eval_episodes"]


@pytest.mark.slow
def test_same_seed_same_ppo_curve(tmp_path):
    curves = []
    for name in ("a", "b"):
        _, sink = run(tmp_path / name, mode=Mode.PPO, eval_interval=0, total_timesteps=1024)
        curves.append([(m.timestep, m.data["mean_return"], m.data["value_loss"]) for m in sink.of_kind(EventKind.METRICS)])
    assert curves[0] == curves[1]
    _, other = run(tmp_path / "c", mode=Mode.PPO, eval_interval=0, total_timesteps=1024, seed=1)
    assert [(m.timestep, m.data["mean_return"]) for m in other.of_kind(EventKind.METRICS)] != [c[:2] for c in curves[0]]


@pytest.mark.slow
def test_stop_then_resume_continues_steps_and_sequence_numbers_and_the_feedback_reaches_the_teacher(tmp_path):
    config = RunConfig(**{**SMALL, "mode": Mode.BIDIRECTIONAL, "total_timesteps": 4096, "checkpoint_interval": 0,
                          "feedback_min_visits": 4, "hint_interval_s": 0.001})
    first = ListSink()
    summary = train(config, first, out_dir=tmp_path, should_stop=lambda: len(first.of_kind(EventKind.METRICS)) >= 2)
    assert summary["status"] == "stopped" and summary["timesteps"] == 1024
    assert first.events[-1].kind == EventKind.RUN_FINISHED
    assert first.of_kind(EventKind.CHECKPOINT)[-1].data["timesteps"] == 1024
    assert (tmp_path / "checkpoint" / "model.zip").exists()

    second = ListSink()
    resumed = train(config, second, out_dir=tmp_path, resume=True, last_seq=first.events[-1].seq)
    assert resumed["status"] == "succeeded" and resumed["timesteps"] == 4096
    assert second.events[0].kind == EventKind.RUN_STARTED and second.events[0].data["resumed"]
    assert second.events[0].seq == first.events[-1].seq + 1
    assert_strictly_increasing(first.events + second.events)
    assert second.of_kind(EventKind.METRICS)[0].timestep == 1536
    # A stopped run is not kept waiting for the teacher's measurement; the finished one has it.
    assert summary["teacher_accuracy_start"] is None and 0 <= resumed["teacher_accuracy_start"] <= 1

    # The student's feedback, kept over the resume, reaches the teacher and changes it.
    last = second.of_kind(EventKind.METRICS)[-1].data
    assert last["feedback_situations"] > 0 and last["teacher_reliability"] is not None
    assert any(h.data["feedback"] for h in second.of_kind(EventKind.HINT))
    assert resumed["teacher_accuracy_end"] != resumed["teacher_accuracy_start"], "the student's feedback changes the teacher"
    assert resumed["teacher_accuracy_end_unjudged"] is not None


def test_a_stop_during_the_teachers_warm_up_ends_the_run_before_training(tmp_path):
    sink = ListSink()
    asked = []
    config = RunConfig(**{**SMALL, "mode": Mode.BIDIRECTIONAL})
    summary = train(config, sink, out_dir=tmp_path, should_stop=lambda: asked.append(1) or len(asked) > 3)
    assert summary["status"] == "stopped" and summary["timesteps"] == 0 and not sink.of_kind(EventKind.METRICS)
    assert summary["llm_calls"] <= 3, "the warm-up stopped after the third answer"


def test_unknown_level_fails_before_training(tmp_path):
    sink = ListSink()
    with pytest.raises(ValueError, match="unknown level"):
        train(RunConfig(env_id="BabyAI-NoSuchLevel-v0"), sink, out_dir=tmp_path)
    assert [e.kind for e in sink.events] == [EventKind.RUN_FAILED]


class HangAfterFirstRollout(ListSink):
    """Makes every LLM call hang once the first rollout has been reported, and from then on
    holds each rollout's report for ``pace_s``, so that the run outlasts the teacher's timeout
    however fast the machine trains (7 rollouts took 3.6 s here, under a 4 s timeout)."""

    def __init__(self, pace_s: float = 1.0):
        super().__init__()
        self.hang = False
        self.pace_s = pace_s

    def emit(self, event):
        super().emit(event)
        if event.kind == EventKind.METRICS:
            if self.hang:
                time.sleep(self.pace_s)
            self.hang = True


@pytest.mark.slow
def test_a_hanging_llm_call_switches_the_run_to_student_only(tmp_path, monkeypatch):
    sink = HangAfterFirstRollout()
    real_prompt = LLMTeacher.prompt

    def prompt(self, situation, feedback):
        if sink.hang:
            time.sleep(60)
        return real_prompt(self, situation, feedback)

    monkeypatch.setattr(LLMTeacher, "prompt", prompt)
    config = RunConfig(**{**SMALL, "mode": Mode.BIDIRECTIONAL, "teacher_timeout_s": 4.0, "total_timesteps": 4096,
                          "probe_states": 20, "feedback_min_visits": 4})
    summary = train(config, sink, out_dir=tmp_path)
    faults = sink.of_kind(EventKind.TEACHER_FAULT)
    assert len(faults) == 1 and faults[0].data["fallback"] == "student-only"
    assert "did not answer within 4 s" in faults[0].data["error"]
    after = [m for m in sink.of_kind(EventKind.METRICS) if m.seq > faults[0].seq]
    assert after and all(m.data["guidance_loss"] is None for m in after), [(m.seq, m.timestep, m.data["guidance_loss"]) for m in after]
    assert summary["status"] == "succeeded" and summary["timesteps"] == 4096


@pytest.mark.slow
def test_headless_command(tmp_path):
    out = tmp_path / "run"
    help_text = subprocess.run([sys.executable, "-m", "workers", "train", "--help"], capture_output=True, text=True, check=True).stdout
    for option in ("--env", "--mode", "--timesteps", "--seed", "--out", "--resume", "--teacher-model", "--guidance-coef"):
        assert option in help_text
    done = subprocess.run(
        [sys.executable, "-m", "workers", "train", "--mode", "ppo", "--timesteps", "1024", "--seed", "3",
         "--out", str(out), "--eval-episodes", "3", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary) and summary["seed"] == 3
    events = read_jsonl(out / "events.jsonl")
    assert events[0].kind == EventKind.RUN_STARTED and events[-1].kind == EventKind.RUN_FINISHED
    bad = subprocess.run([sys.executable, "-m", "workers", "train", "--mode", "bidirectional", "--timesteps", "1024",
                          "--teacher-model", "/etc/passwd", "--out", str(tmp_path / "bad"), "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "neither an installed model" in bad.stderr


@pytest.mark.slow
def test_more_distillation_passes_bring_the_student_closer_to_the_teacher(tmp_path):
    first_rollout_kl = []
    for epochs in (1, 4):
        _, sink = run(tmp_path / str(epochs), mode=Mode.ORACLE, total_timesteps=512, eval_interval=0, guidance_epochs=epochs)
        first_rollout_kl.append(sink.of_kind(EventKind.METRICS)[0].data["guidance_loss"])
    assert first_rollout_kl[1] < first_rollout_kl[0]


@pytest.mark.slow
def test_samples_the_student_already_follows_sit_out_the_distillation_passes(tmp_path):
    kl = {}
    for tolerance in (0.0, 100.0):  # 100 nats: every sample counts as followed, no pass runs
        _, sink = run(tmp_path / str(tolerance), mode=Mode.ORACLE, total_timesteps=512, eval_interval=0,
                      guidance_tolerance=tolerance)
        kl[tolerance] = sink.of_kind(EventKind.METRICS)[0].data["guidance_loss"]
    assert kl[0.0] < kl[100.0], "the passes ran only where the tolerance let them"


class RefusesFrom(ListSink):
    """Refuses every event from the first of ``kind`` on, as the web app's sink refuses a
    superseded attempt's."""

    def __init__(self, kind):
        super().__init__()
        self.kind, self.refusing = kind, False

    def emit(self, event):
        self.refusing = self.refusing or event.kind == self.kind
        if self.refusing:
            raise RuntimeError("not this attempt's run any more")
        super().emit(event)


@pytest.mark.parametrize("kind", [EventKind.CHECKPOINT, EventKind.RUN_FINISHED])
def test_an_attempt_whose_event_is_refused_leaves_the_run_s_files_as_they_were(tmp_path, kind):
    config = RunConfig(**{**SMALL, "mode": Mode.PPO, "total_timesteps": 1024, "checkpoint_interval": 1,
                          "eval_interval": 0, "eval_episodes": 1})
    (tmp_path / "summary.json").write_text("the newer attempt's")
    (tmp_path / "checkpoint.partial-dead").mkdir()  # left by an attempt killed before its rename
    with pytest.raises(RuntimeError, match="not this attempt's"):
        train(config, RefusesFrom(kind), out_dir=tmp_path)
    assert (tmp_path / "summary.json").read_text() == "the newer attempt's"
    assert not list(tmp_path.glob("*.partial-*")), "no file half-written, none left over"
    assert (tmp_path / "checkpoint").exists() == (kind == EventKind.RUN_FINISHED)
