"""A study's outputs as data: each finished run's summary, its training-return and
teacher-accuracy curves and its hints, read from the run directories the runner wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from study.rundir import RunState, read_events, read_summary, run_state, timeline
from study.runner import INVOCATIONS_FILE, SPEC_FILE
from study.spec import RunKey, StudySpec
from workers.engine import MIN_EPISODES_FOR_THRESHOLD
from workers.events import Event, EventKind


@dataclass
class RunData:
    """One finished run."""

    key: RunKey
    summary: dict[str, Any]
    returns: tuple[np.ndarray, np.ndarray]
    """(frames, training return: mean of the last 100 episodes) per rollout; rollouts before
    the first finished episode have no return and are left out."""
    accuracy: tuple[np.ndarray, np.ndarray]
    """(frames, teacher accuracy on the probe states): the zero-shot measurement at frame 0,
    the per-rollout ones that cover every probe state (the teacher acting alone answers them
    during its first rollouts, measured on the part answered by then), and the final one at
    the last frame; empty without a teacher."""
    hints: list[dict[str, Any]]
    """The HINT events' data, in order, each with its ``timestep``."""
    teacher_fault: str | None
    """Why the teacher was dropped mid-run (the run went on as PPO alone), if it was."""
    wall_s_to_threshold: float | None
    """Seconds the run had taken when its training return first reached the threshold (None:
    never), counting everything it did up to then: loading and measuring the teacher, every
    LLM call."""


@dataclass
class StudyData:
    spec: StudySpec
    runs: list[RunData]
    missing: list[str]
    """Runs of the spec that are not done (left out of every statistic)."""
    invocations: list[dict[str, Any]]
    """The runner's log: one line per invocation."""

    def select(self, env_id: str, mode: str) -> list[RunData]:
        return [r for r in self.runs if r.key.level.env_id == env_id and r.key.mode == mode]


def _curve(events: list[Event], field: str) -> tuple[np.ndarray, np.ndarray]:
    points = [(e.timestep, e.data[field]) for e in events if e.kind == EventKind.METRICS and e.data.get(field) is not None]
    if not points:
        return np.empty(0), np.empty(0)
    x, y = zip(*points)
    return np.array(x, dtype=float), np.array(y, dtype=float)


def _accuracy_curve(events: list[Event], summary: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    start, end = summary.get("teacher_accuracy_start"), summary.get("teacher_accuracy_end")
    if start is None or end is None:
        return np.empty(0), np.empty(0)
    # Events from before the answered count was reported were measured on every probe state.
    on_every_probe = [e for e in events if e.data.get("teacher_accuracy_answered") == e.data.get("probe_states")]
    x, y = _curve(on_every_probe, "teacher_accuracy")
    # The final measurement comes after the last rollout's, at the same frame count.
    during = x < summary["timesteps"]
    return np.r_[0.0, x[during], float(summary["timesteps"])], np.r_[start, y[during], end]


def wall_s_to_threshold(events: list[Event], threshold: float) -> float | None:
    """``elapsed_s`` of the PROGRESS event that follows the first METRICS event whose training
    return reached ``threshold`` over enough episodes (the engine's rule for frames to it)."""
    crossed = False
    for event in events:
        if event.kind == EventKind.METRICS and not crossed:
            ret, n = event.data["mean_return"], event.data["episodes"]
            crossed = ret is not None and n >= MIN_EPISODES_FOR_THRESHOLD and ret >= threshold
        elif event.kind == EventKind.PROGRESS and crossed:
            return float(event.data["elapsed_s"])
    return None


def load_run(key: RunKey, out: Path) -> RunData | None:
    """The run's data, or None when it is not done."""
    directory = key.directory(out)
    if run_state(directory) != RunState.DONE:
        return None
    events = timeline(read_events(directory))
    summary = read_summary(directory)
    assert summary is not None
    return RunData(
        key=key,
        summary=summary,
        returns=_curve(events, "mean_return"),
        accuracy=_accuracy_curve(events, summary),
        hints=[{**e.data, "timestep": e.timestep} for e in events if e.kind == EventKind.HINT],
        teacher_fault=next((e.data["error"] for e in events if e.kind == EventKind.TEACHER_FAULT), None),
        wall_s_to_threshold=wall_s_to_threshold(events, key.level.return_threshold),
    )


def load_study(out: Path) -> StudyData:
    """Every run of the study in ``out`` (the spec is the one the runner stored there)."""
    spec = StudySpec.from_dict(json.loads((out / SPEC_FILE).read_text()))
    runs, missing = [], []
    for key in spec.runs():
        run = load_run(key, out)
        if run is None:
            missing.append(key.name)
        else:
            runs.append(run)
    log = out / INVOCATIONS_FILE
    invocations = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    return StudyData(spec=spec, runs=runs, missing=missing, invocations=invocations)
