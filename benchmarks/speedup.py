"""All modes side by side on one level: prints one table (and writes it as JSON).

    .venv/bin/python benchmarks/modes.py --timesteps 60000 --seeds 5 --workers 2

    .venv/bin/python benchmarks/modes.py --from-study var/study/full

The second form runs nothing: it prints the table of the level ``--env`` from a study's
finished runs (``make study``), which are the same engine's runs with the study's settings.

The runs are a one-level study (``study.runner``: one process per (mode, seed), ``--workers``
at a time; ``--out`` keeps the run directories, and running again with the same ``--out``
resumes). The budget is rounded up to whole rollouts, which is what the engine trains anyway.
Wall time to 0.9 is read from the run's own events (``study.data.wall_s_to_threshold``), so it
counts everything the run did up to then: loading the teacher, measuring it, every LLM call.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from study.data import StudyData, load_study  # noqa: E402
from study.runner import run_study  # noqa: E402
from study.spec import Level, StudySpec  # noqa: E402
from workers.config import Mode, RunConfig  # noqa: E402


def benchmark(env_id: str, modes: list[str], timesteps: int, seeds: int, teacher: str, workers: int, out: Path) -> list[dict]:
    """Every (mode, seed) run's summary, with ``wall_s_to_0_9``."""
    settings = {"teacher_model": teacher, "frame_interval_s": 0.1, "eval_interval": 0}  # frames: as when someone watches
    rollout = RunConfig(**settings).rollout_frames
    level = Level(env_id, return_threshold=0.9, total_timesteps=-(-timesteps // rollout) * rollout, why="benchmark")
    spec = StudySpec(
        name="modes", description="benchmarks/modes.py", levels=(level,), modes=tuple(modes),
        seeds=tuple(range(seeds)), settings=settings,
    )
    outcome = run_study(spec, out, workers=workers, command=shlex.join([sys.executable, *sys.argv]))
    if not outcome.complete:
        sys.exit(f"runs not finished: {outcome.failed or outcome.stopped}")
    return summaries_of(load_study(out), env_id)


def summaries_of(data: StudyData, env_id: str) -> list[dict]:
    """Every finished run's summary on ``env_id`` in a study, with ``wall_s_to_0_9``."""
    if data.spec.level(env_id).return_threshold != 0.9:
        sys.exit(f"{env_id}'s threshold in this study is not 0.9: wall_s_to_0_9 would mean something else")
    return [{**run.summary, "wall_s_to_0_9": run.wall_s_to_threshold} for run in data.runs if run.summary["env"] == env_id]


def _median(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(value, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def table(summaries: list[dict]) -> str:
    rows = [
        "| mode | runs reaching 0.9 | frames to 0.9 (median) | wall s to 0.9 (median) | env steps/s | "
        "final eval return, greedy | sampled | teacher acc. start → end | LLM calls / 1k steps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in Mode:
        runs = [s for s in summaries if s["mode"] == mode.value]
        if not runs:
            continue
        reached = [s for s in runs if s["frames_to_0_9"] is not None]
        # A run that never reached 0.9 counts as needing more than it had: the median is
        # taken over all runs, with those as +inf, and shown as "—" if it lands there.
        frames = sorted(s["frames_to_0_9"] if s["frames_to_0_9"] is not None else float("inf") for s in runs)
        walls = sorted(s["wall_s_to_0_9"] if s["wall_s_to_0_9"] is not None else float("inf") for s in runs)
        med_frames, med_wall = statistics.median(frames), statistics.median(walls)
        acc_start = _median([s["teacher_accuracy_start"] for s in runs])
        acc_end = _median([s["teacher_accuracy_end"] for s in runs])
        calls = _median([1000 * s["llm_calls"] / s["timesteps"] for s in runs])
        rows.append(
            f"| {mode.value} | {len(reached)}/{len(runs)} | "
            f"{_fmt(med_frames if med_frames != float('inf') else None)} | "
            f"{_fmt(med_wall if med_wall != float('inf') else None, 1)} | "
            f"{_fmt(_median([s['fps'] for s in runs]))} | {_fmt(_median([s['final_eval_return'] for s in runs]), 3)} | "
            # Runs made before the engine evaluated the sampled policy too have no figure for it.
            f"{_fmt(_median([s.get('final_eval_sampled_return') for s in runs]), 3)} | "
            f"{_fmt(acc_start, 2)} → {_fmt(acc_end, 2)} | {_fmt(calls, 2)} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="BabyAI-GoToRedBallNoDists-v0")
    parser.add_argument("--modes", default=",".join(m.value for m in Mode))
    parser.add_argument("--timesteps", type=int, default=60_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--teacher", default=RunConfig.teacher_model)
    parser.add_argument("--out", type=Path, help="keep the run directories here (default: a temporary directory)")
    parser.add_argument("--from-study", type=Path, metavar="DIR",
                        help="run nothing: the table of --env from the finished runs of the study in DIR")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/modes.json"))
    args = parser.parse_args()
    run = (args.env, args.modes.split(","), args.timesteps, args.seeds, args.teacher, args.workers)
    if args.from_study:
        data = load_study(args.from_study)
        summaries = summaries_of(data, args.env)
        title = (f"{args.env}, from the study in {args.from_study}: {len(data.spec.seeds)} seeds, "
                 f"{data.spec.level(args.env).total_timesteps:,} frames per run, settings {data.spec.settings}")
    else:
        if args.out:
            summaries = benchmark(*run, args.out)
        else:
            with tempfile.TemporaryDirectory() as out:
                summaries = benchmark(*run, Path(out))
        title = (f"{args.env}, {args.timesteps:,} frames per run, {args.seeds} seeds, {args.workers} runs at a time, "
                 f"teacher {args.teacher}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summaries, indent=2))
    print(f"{title}\n")
    print(table(summaries))


if __name__ == "__main__":
    main()
