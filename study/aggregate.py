"""Per level and mode: each metric's IQM with its bootstrap 95 % CI, and bidirectional tested
against every other mode. Everything JSON-able, for ``docs/results/study.json`` and the report.

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

from experiments_app.analysis import area_under_curve
from study import stats
from study.data import RunData, StudyData

BIDIRECTIONAL = "bidirectional"


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    higher_is_better: bool
    value: Callable[[RunData], float | None]
    tested: bool
    """Compared between bidirectional and the other modes."""
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


def aggregate(data: StudyData, *, reps: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Estimates per level and mode, the tests, and the estimates pooled over levels."""
    spec = data.spec
    levels = []
    for level in spec.levels:
        modes: dict[str, Any] = {}
        for mode in spec.modes:
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
                "modes": modes,
                "tests": tests(data, level.env_id, seed=seed),
            }
        )
    overall = {
        mode: {
            m.name: stats.estimate(
                [values(data.select(level.env_id, mode), m) for level in spec.levels], reps=reps, seed=seed
            ).to_dict()
            for m in METRICS
            if m.across_levels
        }
        for mode in spec.modes
    }
    return {"levels": levels, "overall": overall}


def tests(data: StudyData, env_id: str, *, seed: int = 0) -> list[dict[str, Any]]:
    """Bidirectional against every other mode on ``env_id``, for each tested metric, with
    Holm-adjusted p-values over the comparisons of that metric on that level. ``a12`` is the
    probability that a bidirectional run is *better* (for frames: needs fewer). A comparison
    needs at least two runs on each side."""
    if BIDIRECTIONAL not in data.spec.modes:
        return []
    rows: list[dict[str, Any]] = []
    for metric in METRICS:
        if not metric.tested:
            continue
        bi = values(data.select(env_id, BIDIRECTIONAL), metric)
        group = []
        for mode in data.spec.modes:
            other = values(data.select(env_id, mode), metric)
            if mode == BIDIRECTIONAL or len(bi) < 2 or len(other) < 2:
                continue
            # A12 oriented so that > 0.5 always means "bidirectional is better".
            sign = 1.0 if metric.higher_is_better else -1.0
            test = stats.rank_test([sign * v for v in bi], [sign * v for v in other], seed=seed)
            group.append(
                {
                    "metric": metric.name,
                    "other": mode,
                    "iqm_bidirectional": float(stats.iqm(bi, axis=None)),
                    "iqm_other": float(stats.iqm(other, axis=None)),
                    **test.to_dict(),
                }
            )
        for row, adjusted in zip(group, stats.holm([row["p_value"] for row in group])):
            row["p_holm"] = adjusted
        rows.extend(group)
    return rows
