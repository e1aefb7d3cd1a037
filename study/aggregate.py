"""Per level and mode: each metric's IQM with its bootstrap 95 % CI; the speed-up of every mode
against PPO alone and the share of the oracle's gain the teacher-guided modes capture, with
their CIs; and the level's bidirectional mode (with the level's guidance kind) tested against
every other mode. Everything JSON-able, for ``docs/results/study.json`` and the report.

Metrics (one value per run):

* ``frames_to_threshold``: the first frame at which the training return reached the level's
  threshold; a run that never did counts as the budget (right-censored: the true value is
  larger, so the IQM of a mode with such runs is a lower bound, and "reached" says how many did);
* ``auc``: area under the training-return curve divided by the frames it spans (first rollout
  to the budget): the mean return over training, 0..1, the compare page's "area under the
  curve"; it rewards learning early and needs no threshold;
* ``final_eval_return``, ``final_eval_success``: greedy episodes on held-out seeds at the end;
* ``final_eval_sampled_return``: the same episodes with actions sampled from the policy (the
  memoryless student's greedy policy can turn on the spot until time runs out);
* ``teacher_accuracy_start``, ``teacher_accuracy_end``: agreement of the teacher's most likely
  action with the BabyAI bot's on the run's probe states, zero-shot and at the end (LLM modes);
* ``llm_calls``: LLM forward passes in the run (cache misses).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from experiments_app.analysis import area_under_curve
from study import stats
from study.data import RunData, StudyData
from study.spec import ALL_MODES, Level, StudySpec, arm_fields, arm_kind, arm_name
from workers.config import Mode


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    higher_is_better: bool
    value: Callable[[RunData], float | None]
    tested: bool
    """Compared between the level's bidirectional mode and the other modes."""
    across_levels: bool
    """Comparable across levels, so pooled over them (stratified by level)."""


def _frames(run: RunData) -> float:
    reached = run.summary.get("frames_to_threshold")
    return float(reached if reached is not None else run.key.level.total_timesteps)


def _auc(run: RunData) -> float | None:
    return area_under_curve(*run.returns)


def _field(name: str) -> Callable[[RunData], float | None]:
    return lambda run: run.summary.get(name)


METRICS: tuple[Metric, ...] = (
    Metric("frames_to_threshold", "frames to threshold", False, _frames, tested=True, across_levels=False),
    Metric("auc", "return AUC", True, _auc, tested=True, across_levels=True),
    Metric("final_eval_return", "final eval return", True, _field("final_eval_return"), tested=True, across_levels=True),
    Metric("final_eval_success", "final eval success", True, _field("final_eval_success"), tested=False, across_levels=True),
    Metric(
        "final_eval_sampled_return",
        "final eval return, sampled",
        True,
        _field("final_eval_sampled_return"),
        tested=True,
        across_levels=True,
    ),
    Metric(
        "teacher_accuracy_start", "teacher acc. start", True, _field("teacher_accuracy_start"), tested=False, across_levels=False
    ),
    Metric("teacher_accuracy_end", "teacher acc. end", True, _field("teacher_accuracy_end"), tested=True, across_levels=False),
    Metric("llm_calls", "LLM calls", False, _field("llm_calls"), tested=False, across_levels=False),
)
METRIC = {m.name: m for m in METRICS}


def values(runs: list[RunData], metric: Metric) -> list[float]:
    """The metric of each run that has it."""
    return [float(v) for v in (metric.value(r) for r in runs) if v is not None]


def _censored(runs: list[RunData]) -> bool:
    return any(r.summary.get("frames_to_threshold") is None for r in runs)


def _bound(*directions: str | None) -> str:
    """What censored frames make of a statistic, given the way each censored group's true
    frames would move it ("lower": the estimate is a lower bound, "upper", or "unknown"; None
    for a group without censored runs): "exact" when no group is censored, the direction they
    all agree on, else "unknown"."""
    moved = {d for d in directions if d is not None}
    if not moved:
        return "exact"
    return moved.pop() if len(moved) == 1 else "unknown"


def _direction(censored: bool, grows: float) -> str | None:
    """How a group's censoring bounds a statistic that changes as ``grows`` (its sign) when the
    group's frames grow: their true value is above the budget the censored runs count."""
    if not censored:
        return None
    return "lower" if grows > 0 else "upper" if grows < 0 else "unknown"


def speedups(data: StudyData, level: Level, *, reps: int, seed: int) -> dict[str, Any]:
    """Per mode of ``level`` other than PPO alone: PPO alone's frames to threshold over the
    mode's (IQMs), with its 95 % CI. PPO runs that never reached the threshold count as the
    budget, so the speed-up is then a lower bound; the mode's own censored runs make it an
    upper bound; both: unknown."""
    ppo = data.select(level.env_id, Mode.PPO.value)
    frames = METRIC["frames_to_threshold"]
    rows = {}
    for mode in data.spec.modes_of(level):
        runs = data.select(level.env_id, mode)
        if mode == Mode.PPO.value or not runs or not ppo:
            continue
        estimate = stats.group_estimate([values(ppo, frames), values(runs, frames)], np.divide, reps=reps, seed=seed)
        bound = _bound(_direction(_censored(ppo), +1), _direction(_censored(runs), -1))
        rows[mode] = {**estimate.to_dict(), "bound": bound}
    return rows


def oracle_shares(data: StudyData, level: Level, *, reps: int, seed: int) -> dict[str, Any]:
    """Per teacher-guided mode of ``level`` (unidirectional, bidirectional) whose guidance kind
    the oracle also ran with: the share of the oracle's gain in frames to threshold that the
    mode captures, ``s = (p - m) / (p - o)`` on the IQMs of PPO alone's, the mode's and the
    oracle's frames (1: all of it, 0: none, below 0: slower than PPO alone), with its 95 % CI.
    Censored runs bound it by the way their true frames would move it: PPO's by the sign of
    ``m - o`` (a mode slower than the oracle: a lower bound), the mode's by that of ``o - p``,
    the oracle's either way (its true frames may pass PPO's: unknown)."""
    ppo = data.select(level.env_id, Mode.PPO.value)
    frames = METRIC["frames_to_threshold"]
    rows = {}
    for mode in data.spec.modes_of(level):
        fields = arm_fields(mode)
        if fields["mode"] not in (Mode.UNIDIRECTIONAL.value, Mode.BIDIRECTIONAL.value):
            continue
        oracle_mode = arm_name(Mode.ORACLE.value, arm_kind(mode))
        runs, oracle = data.select(level.env_id, mode), data.select(level.env_id, oracle_mode)
        if not (runs and oracle and ppo):
            continue
        groups = [values(ppo, frames), values(runs, frames), values(oracle, frames)]
        estimate = stats.group_estimate(groups, lambda p, m, o: (p - m) / (p - o), reps=reps, seed=seed)
        p, m, o = (float(stats.iqm(g, axis=None)) for g in groups)
        bound = _bound(
            _direction(_censored(ppo), m - o),
            _direction(_censored(runs), o - p),
            "unknown" if _censored(oracle) else None,
        )
        rows[mode] = {**estimate.to_dict(), "oracle": oracle_mode, "bound": bound}
    return rows


def aggregate(data: StudyData, *, reps: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Estimates per level and mode, the speed-ups and shares of the oracle's gain, the tests,
    and each mode (with each level's guidance kind) pooled over levels."""
    spec = data.spec
    levels = []
    for level in spec.levels:
        modes: dict[str, Any] = {}
        for mode in spec.modes_of(level):
            runs = data.select(level.env_id, mode)
            modes[mode] = {
                "runs": len(runs),
                "reached": sum(r.summary.get("frames_to_threshold") is not None for r in runs),
                "metrics": {m.name: stats.estimate(values(runs, m), reps=reps, seed=seed).to_dict() for m in METRICS},
            }
        levels.append(
            {
                "env_id": level.env_id,
                "return_threshold": level.return_threshold,
                "budget": level.total_timesteps,
                "teacher_budget": level.teacher_timesteps or level.total_timesteps,
                "why": level.why,
                "guidance_kind": level.guidance_kind,
                "tested_mode": tested_mode(spec, level),
                "modes": modes,
                "speedups": speedups(data, level, reps=reps, seed=seed),
                "oracle_shares": oracle_shares(data, level, reps=reps, seed=seed),
                "tests": tests(data, level.env_id, seed=seed),
            }
        )
    # Pooled by role: each level contributes its mode with its own guidance kind.
    overall = {}
    for mode in ALL_MODES:
        strata = [
            data.select(level.env_id, level.arm(mode)) for level in spec.levels if level.arm(mode) in spec.modes_of(level)
        ]
        if strata:
            overall[mode] = {
                m.name: stats.estimate([values(runs, m) for runs in strata], reps=reps, seed=seed).to_dict()
                for m in METRICS
                if m.across_levels
            }
    return {"levels": levels, "overall": overall}


def tested_mode(spec: StudySpec, level: Level) -> str | None:
    """The mode tested against the others on ``level``: bidirectional with the level's guidance
    kind (None if the level does not run it)."""
    mode = level.arm(Mode.BIDIRECTIONAL.value)
    return mode if mode in spec.modes_of(level) else None


def tests(data: StudyData, env_id: str, *, seed: int = 0) -> list[dict[str, Any]]:
    """The level's tested mode (``tested_mode``) against every other mode on ``env_id``, for
    each tested metric, with Holm-adjusted p-values over the comparisons of that metric on that
    level. ``a12`` is the probability that a run of the tested mode is *better* (for frames:
    needs fewer). A comparison needs at least two runs on each side; teacher accuracy is
    compared only between modes of the same guidance kind (plan accuracy is not action
    accuracy)."""
    level = data.spec.level(env_id)
    tested = tested_mode(data.spec, level)
    if tested is None:
        return []
    rows: list[dict[str, Any]] = []
    for metric in METRICS:
        if not metric.tested:
            continue
        mine = values(data.select(env_id, tested), metric)
        group = []
        for mode in data.spec.modes_of(level):
            other = values(data.select(env_id, mode), metric)
            if mode == tested or len(mine) < 2 or len(other) < 2:
                continue
            if metric.name.startswith("teacher_accuracy") and arm_kind(mode) != arm_kind(tested):
                continue
            # A12 oriented so that > 0.5 always means "the tested mode is better".
            sign = 1.0 if metric.higher_is_better else -1.0
            test = stats.rank_test([sign * v for v in mine], [sign * v for v in other], seed=seed)
            group.append(
                {
                    "metric": metric.name,
                    "mode": tested,
                    "other": mode,
                    "iqm_mode": float(stats.iqm(mine, axis=None)),
                    "iqm_other": float(stats.iqm(other, axis=None)),
                    **test.to_dict(),
                }
            )
        for row, adjusted in zip(group, stats.holm([row["p_value"] for row in group])):
            row["p_holm"] = adjusted
        rows.extend(group)
    return rows
