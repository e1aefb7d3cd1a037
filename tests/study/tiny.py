"""A tiny real study for the tests: the real runner and engine, a few hundred frames a run,
run once per test session and shared (read-only: copy it to change it)."""

from __future__ import annotations

from pathlib import Path

from study.runner import Outcome, run_study
from study.spec import Level, StudySpec

TINY_LEVEL = Level("BabyAI-GoToRedBallNoDists-v0", return_threshold=0.2, total_timesteps=256, why="a test")
TINY_SETTINGS = {
    "n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 2, "eval_episodes": 2, "probe_states": 10,
    "frame_interval_s": 0.0, "hint_interval_s": 0.01, "checkpoint_interval": 1,
}
# No LLM mode: on a busy 2-core machine one LLM call can take seconds, and the LLM modes are
# the engine tests' business. The oracle guides through the same hint path.
SPEC = StudySpec(
    name="tiny", description="A test study.", levels=(TINY_LEVEL,), modes=("ppo", "oracle"), seeds=(0, 1),
    settings=TINY_SETTINGS,
)


def run_tiny(spec: StudySpec, out: Path) -> Outcome:
    outcome = run_study(spec, out, workers=2, command="pytest", show_progress=False)
    assert outcome.complete, outcome
    return outcome


def shared_study(tmp_path_factory) -> Path:
    """The tiny study's directory, run by the first test of the session that asks for it."""
    out = tmp_path_factory.getbasetemp() / "tiny-study"
    run_tiny(SPEC, out)  # nothing to do when an earlier test ran it
    return out
