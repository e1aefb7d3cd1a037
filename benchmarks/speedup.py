"""How much faster does guidance make PPO? All modes side by side, per level: one table each.

    .venv/bin/python benchmarks/speedup.py                                  # NoDists, 5 seeds
    .venv/bin/python benchmarks/speedup.py --level BabyAI-UnlockLocal-v0:0.8:61440 --modes ppo,oracle
    .venv/bin/python benchmarks/speedup.py --level BabyAI-UnlockLocal-v0:0.8:61440 \
        --modes ppo,oracle-subgoals,unidirectional-subgoals,bidirectional-subgoals
    .venv/bin/python benchmarks/speedup.py --from-study var/study/full      # runs nothing
    .venv/bin/python benchmarks/speedup.py --from-study DIR --from-study DIR2 --figure F.html

Each row: runs that reached the level's threshold; the median frames to it, where a run that
never reached it counts as its budget (so such a median is a lower bound); the speed-up
against PPO alone (PPO's median frames over the mode's; marked "≥" where PPO's median is such a
bound, "≤" where the mode's is, "?" where both are); the median wall time to the
threshold, every LLM call included (loading and warming up the teacher, answering, measuring),
None when the median run did not reach it; the teacher's accuracy against the BabyAI bot
zero-shot, at the end of the run with the student's feedback, and at the end on the probe
states whose situation the student has not judged (for a "-subgoals" mode: its subgoal against
the bot's, on plan states); LLM calls per 1,000 steps; steps/s; the
final evaluation, greedy and sampled.

The runs are a study (``study.runner``: one process per run, ``--workers`` at a time; ``--out``
keeps the run directories, and running again with the same ``--out`` resumes), so budgets are
rounded up to whole rollouts. ``--from-study`` reads a study's finished runs instead (``make
study``: the same engine with the study's settings, or an earlier ``--out``); given several
times, it puts their modes side by side per level, each mode with its own study's budget (PPO
alone run longer than the guided modes, say), where the threshold is the same. ``--figure``
draws every level's training-return curves, per mode the IQM across seeds with its 95 %
bootstrap band, as HTML and, where kaleido finds a Chromium, a PNG beside it. Writes the levels
it measured into ``--json`` (default benchmarks/results/speedup.json; the other levels there
stay): ``{"levels": {env: {"command", "header", "budget" (the largest), "threshold", "modes":
{mode: {"budget", "seeds", "reached", "median_frames_to_threshold", "speedup_vs_ppo", "speedup_bound",
"median_wall_s_to_threshold",
"teacher_accuracy_start", "teacher_accuracy_end", "teacher_accuracy_end_unjudged",
"llm_calls_per_1k_steps", "steps_per_s", "final_eval_return", "final_eval_sampled_return",
"runs": [...every run's summary...]}}}}}``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from study.data import RunData, StudyData, load_study  # noqa: E402
from study.figures import BOUND_MARK, Panel, returns_figure, save_figures  # noqa: E402
from study.runner import run_study  # noqa: E402
from study.spec import Level, StudySpec  # noqa: E402
from workers.config import Mode, RunConfig  # noqa: E402

DEFAULT_LEVEL = "BabyAI-GoToRedBallNoDists-v0:0.9:40960"


def parse_level(raw: str) -> Level:
    """``ENV[:THRESHOLD[:BUDGET]]``; the threshold defaults to 0.9, the budget to 40,960 frames."""
    env_id, threshold, budget = (raw.split(":") + ["0.9", "40960"][raw.count(":"):])[:3]
    rollout = RunConfig().rollout_frames
    frames = -(-int(budget) // rollout) * rollout
    # The teacher alone learns nothing: a few rollouts measure it (its frames to the threshold
    # are censored at the budget like every mode's).
    return Level(env_id, return_threshold=float(threshold), total_timesteps=frames, why="benchmarks/speedup.py",
                 teacher_timesteps=min(frames, 4 * rollout))


def run_levels(levels: list[Level], modes: list[str], seeds: int, teacher: str, workers: int, out: Path) -> StudyData:
    settings = {"teacher_model": teacher, "frame_interval_s": 0.1, "eval_interval": 0}  # frames: as when someone watches
    spec = StudySpec(name="speedup", description="benchmarks/speedup.py", levels=tuple(levels), modes=tuple(modes),
                     seeds=tuple(range(seeds)), settings=settings)
    outcome = run_study(spec, out, workers=workers, command=shlex.join([sys.executable, *sys.argv]))
    if not outcome.complete:
        sys.exit(f"runs not finished: {outcome.failed or outcome.stopped}")
    return load_study(out)


def _median(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


Measured = dict[str, dict[str, tuple[Level, list[RunData]]]]
"""env_id -> mode -> (the level as the mode's study ran it, the mode's finished runs)."""


def measured_modes(studies: list[StudyData]) -> Measured:
    """Every level's modes across ``studies``, in the order the studies and their specs give."""
    measured: Measured = {}
    for data in studies:
        for level in data.spec.levels:
            modes = measured.setdefault(level.env_id, {})
            for mode in data.spec.modes_of(level):
                runs = data.select(level.env_id, mode)
                if not runs:
                    continue
                if mode in modes:
                    sys.exit(f"{level.env_id}: {mode} is in more than one study")
                if any(other.return_threshold != level.return_threshold for other, _ in modes.values()):
                    sys.exit(f"{level.env_id}: the studies' thresholds differ")
                modes[mode] = (level, runs)
    return measured


def level_figures(modes_runs: dict[str, tuple[Level, list[RunData]]]) -> dict[str, Any]:
    """The JSON of one level: every mode's figures and runs."""
    modes: dict[str, Any] = {}
    for mode, (level, runs) in modes_runs.items():
        budget = level.total_timesteps
        frames = [r.summary["frames_to_threshold"] for r in runs]
        walls = sorted(r.wall_s_to_threshold if r.wall_s_to_threshold is not None else float("inf") for r in runs)
        median_wall = statistics.median(walls)
        modes[mode] = {
            "budget": budget,
            "seeds": len(runs),
            "reached": sum(f is not None for f in frames),
            "median_frames_to_threshold": statistics.median(f if f is not None else budget for f in frames),
            "median_wall_s_to_threshold": None if median_wall == float("inf") else median_wall,
            "teacher_accuracy_start": _median([r.summary["teacher_accuracy_start"] for r in runs]),
            "teacher_accuracy_end": _median([r.summary["teacher_accuracy_end"] for r in runs]),
            # Runs from before the engine measured it have no figure for it.
            "teacher_accuracy_end_unjudged": _median([r.summary.get("teacher_accuracy_end_unjudged") for r in runs]),
            "llm_calls_per_1k_steps": _median([1000 * r.summary["llm_calls"] / r.summary["timesteps"] for r in runs]),
            "steps_per_s": _median([r.summary["fps"] for r in runs]),
            "final_eval_return": _median([r.summary["final_eval_return"] for r in runs]),
            "final_eval_sampled_return": _median([r.summary.get("final_eval_sampled_return") for r in runs]),
            "runs": [{**r.summary, "wall_s_to_threshold": r.wall_s_to_threshold} for r in runs],
        }
    ppo = modes.get(Mode.PPO.value)
    for figures in modes.values():
        figures["speedup_vs_ppo"] = ppo and round(ppo["median_frames_to_threshold"] / figures["median_frames_to_threshold"], 2)
        # A median over runs of which half or more never reached the threshold is their budget:
        # PPO's then makes the speed-up a lower bound, the mode's an upper one.
        censored = tuple(m is not None and 2 * m["reached"] <= m["seeds"] for m in (ppo, figures))
        figures["speedup_bound"] = ppo and ("exact" if figures is ppo else {
            (False, False): "exact", (True, False): "lower", (False, True): "upper", (True, True): "unknown"}[censored])
    levels = [level for level, _ in modes_runs.values()]
    return {"budget": max(level.total_timesteps for level in levels), "threshold": levels[0].return_threshold, "modes": modes}


def level_panels(measured: Measured) -> list[Panel]:
    """A curve panel per level, on a grid of one point per rollout up to its largest budget."""
    rollout = RunConfig().rollout_frames
    panels = []
    for env_id, modes_runs in measured.items():
        levels = [level for level, _ in modes_runs.values()]
        budget = max(level.total_timesteps for level in levels)
        grid = np.arange(0, budget + 1, rollout, dtype=float)
        panels.append(Panel(env_id, levels[0].return_threshold, grid, {m: runs for m, (_, runs) in modes_runs.items()}))
    return panels


def write_figure(measured: Measured, html: Path) -> None:
    save_figures({html.stem: returns_figure(level_panels(measured))}, html.parent)


def _fmt(value, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def table(env_id: str, figures: dict[str, Any]) -> str:
    budget, threshold = figures["budget"], figures["threshold"]
    budgets = {mode: m["budget"] for mode, m in figures["modes"].items()}
    if set(budgets.values()) == {budget}:
        frames = f"{budget:,} frames per run (a run that never reaches it counts as {budget:,})"
    else:
        per_mode = "; ".join(f"{mode} {b:,}" for mode, b in budgets.items())
        frames = f"frames per run: {per_mode} (a run that never reaches it counts as its budget)"
    rows = [
        f"{env_id}: threshold {threshold:g}, {frames}\n",
        f"| mode | reached {threshold:g} | frames to {threshold:g} (median) | speed-up vs PPO | wall s to {threshold:g} (median) | "
        "teacher acc. zero-shot → end (unjudged) | LLM calls / 1k steps | steps/s | final eval greedy | sampled |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, m in figures["modes"].items():
        speedup = "—" if m["speedup_vs_ppo"] is None else f"{BOUND_MARK[m['speedup_bound']]}{m['speedup_vs_ppo']:.2f}×"
        rows.append(
            f"| {mode} | {m['reached']}/{m['seeds']} | {_fmt(m['median_frames_to_threshold'])} | {speedup} | "
            f"{_fmt(m['median_wall_s_to_threshold'], 1)} | {_fmt(m['teacher_accuracy_start'], 2)} → "
            f"{_fmt(m['teacher_accuracy_end'], 2)} ({_fmt(m['teacher_accuracy_end_unjudged'], 2)}) | "
            f"{_fmt(m['llm_calls_per_1k_steps'], 2)} | {_fmt(m['steps_per_s'])} | {_fmt(m['final_eval_return'], 3)} | "
            f"{_fmt(m['final_eval_sampled_return'], 3)} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--level", action="append", type=parse_level, metavar="ENV[:THRESHOLD[:BUDGET]]",
                        help=f"a level to run (repeatable; default {DEFAULT_LEVEL})")
    parser.add_argument("--modes", default=",".join(m.value for m in Mode),
                        help='comma-separated; a mode with "-subgoals" ("bidirectional-subgoals") runs it with subgoal guidance')
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="runs at a time (1: each run's wall time is its own)")
    parser.add_argument("--teacher", default=RunConfig.teacher_model)
    parser.add_argument("--out", type=Path, help="keep the run directories here (default: a temporary directory)")
    parser.add_argument("--from-study", type=Path, action="append", metavar="DIR",
                        help="run nothing: read the finished runs of the study in DIR (repeatable)")
    parser.add_argument("--figure", type=Path, metavar="HTML", help="draw the training-return curves here (and a PNG beside it)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/speedup.json"))
    args = parser.parse_args()
    if args.from_study:
        studies = [load_study(directory) for directory in args.from_study]
        header = "; ".join(
            f"From the study in {directory}: {len(data.spec.seeds)} seeds, settings {data.spec.settings}"
            for directory, data in zip(args.from_study, studies)
        )
    else:
        levels = args.level or [parse_level(DEFAULT_LEVEL)]
        run = (levels, args.modes.split(","), args.seeds, args.teacher, args.workers)
        if args.out:
            studies = [run_levels(*run, args.out)]
        else:
            with tempfile.TemporaryDirectory() as out:
                studies = [run_levels(*run, Path(out))]
        header = f"{args.seeds} seeds, {args.workers} run(s) at a time, teacher {args.teacher}"
    command = shlex.join(["python", *sys.argv])
    measured_runs = {env_id: modes for env_id, modes in measured_modes(studies).items() if modes}
    measured = {env_id: {"command": command, "header": header, **level_figures(modes)} for env_id, modes in measured_runs.items()}
    if args.figure:
        write_figure(measured_runs, args.figure)
    # One file for every level measured: a level measured again replaces its entry, the others stay.
    previous = json.loads(args.json.read_text()).get("levels", {}) if args.json.exists() else {}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"levels": {**previous, **measured}}, indent=2))
    print(header + "\n")
    for env_id, figures in measured.items():
        print(table(env_id, figures) + "\n")


if __name__ == "__main__":
    main()
