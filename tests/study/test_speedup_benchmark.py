"""benchmarks/speedup.py on hand-made runs: studies with different budgets side by side, the
speed-up's bound where runs never reached the threshold, the curves figure."""

from dataclasses import replace

import numpy as np
import pytest

from benchmarks import speedup
from study.data import RunData, StudyData
from study.spec import RunKey, StudySpec
from tests.study.tiny import TINY_LEVEL, TINY_SETTINGS

LONG = replace(TINY_LEVEL, total_timesteps=4096)
SHORT = replace(TINY_LEVEL, total_timesteps=1024)


def run(level, mode, seed, reached):
    x = np.array([256.0, float(level.total_timesteps)])
    return RunData(
        key=RunKey(level, mode, seed),
        summary={"frames_to_threshold": reached, "timesteps": level.total_timesteps, "llm_calls": 0, "fps": 100.0,
                 "teacher_accuracy_start": None, "teacher_accuracy_end": None, "final_eval_return": 0.5},
        returns=(x, np.array([0.1, 0.3])),
        accuracy=(np.empty(0), np.empty(0)),
        hints=[],
        teacher_fault=None,
        wall_s_to_threshold=None,
    )


def study(level, frames: dict[str, list[int | None]]) -> StudyData:
    spec = StudySpec(name="t", description="t", levels=(replace(level, modes=tuple(frames)),), seeds=(0, 1, 2),
                     settings=TINY_SETTINGS)
    runs = [run(spec.levels[0], mode, seed, f) for mode, fs in frames.items() for seed, f in enumerate(fs)]
    return StudyData(spec=spec, runs=runs, missing=[], invocations=[])


def test_studies_with_different_budgets_side_by_side():
    ppo = study(LONG, {"ppo": [3072, None, 2048]})
    guided = study(SHORT, {"oracle-subgoals": [512, 768, None], "unidirectional-subgoals": [None, None, 1024]})
    measured = speedup.measured_modes([ppo, guided])
    figures = speedup.level_figures(measured[TINY_LEVEL.env_id])
    modes = figures["modes"]
    assert figures["budget"] == 4096 and [m["budget"] for m in modes.values()] == [4096, 1024, 1024]
    assert modes["ppo"]["median_frames_to_threshold"] == 3072 and modes["ppo"]["speedup_bound"] == "exact"
    oracle = modes["oracle-subgoals"]
    assert (oracle["median_frames_to_threshold"], oracle["speedup_vs_ppo"], oracle["speedup_bound"]) == (768, 4.0, "exact")
    # Two of three never reached 0.2 in 1,024 frames: the median is that budget, so 3x is at most.
    uni = modes["unidirectional-subgoals"]
    assert (uni["median_frames_to_threshold"], uni["speedup_vs_ppo"], uni["speedup_bound"]) == (1024, 3.0, "upper")
    rows = speedup.table(TINY_LEVEL.env_id, figures)
    assert "frames per run: ppo 4,096; oracle-subgoals 1,024; unidirectional-subgoals 1,024" in rows
    assert "| unidirectional-subgoals | 1/3 | 1,024 | ≤ 3.00× |" in rows


def test_a_mode_in_two_studies_or_two_thresholds_is_refused():
    ppo = study(LONG, {"ppo": [3072, None, 2048]})
    with pytest.raises(SystemExit, match="more than one study"):
        speedup.measured_modes([ppo, study(SHORT, {"ppo": [512, 512, 512]})])
    other = replace(SHORT, return_threshold=0.5)
    with pytest.raises(SystemExit, match="thresholds differ"):
        speedup.measured_modes([ppo, study(other, {"oracle": [512, 512, 512]})])


def test_the_curves_figure_spans_the_longest_budget(tmp_path):
    measured = speedup.measured_modes([study(LONG, {"ppo": [None] * 3}), study(SHORT, {"oracle": [512] * 3})])
    modes = speedup.level_figures(measured[TINY_LEVEL.env_id])["modes"]
    assert modes["ppo"]["speedup_bound"] == "exact", "PPO alone against itself"
    assert (modes["oracle"]["speedup_vs_ppo"], modes["oracle"]["speedup_bound"]) == (8.0, "lower")
    (panel,) = speedup.level_panels(measured)
    assert panel.grid[-1] == 4096 and list(panel.runs) == ["ppo", "oracle"]
    html = tmp_path / "curves.html"
    speedup.write_figure(measured, html)
    page = html.read_text()
    assert '"name":"ppo"' in page and '"name":"oracle"' in page
