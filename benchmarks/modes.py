"""All modes side by side on one level: prints one table (and writes it as JSON).

    .venv/bin/python benchmarks/modes.py --timesteps 60000 --seeds 5 --workers 2

Each (mode, seed) is one ``workers.engine.train`` run in its own process. Wall time to 0.9
is read from the run's own events (the PROGRESS event that follows the first METRICS event
whose training return reached the threshold), so it counts everything the run did up to
then: loading the teacher, measuring it, every LLM call.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workers.config import Mode, RunConfig  # noqa: E402
from workers.engine import MIN_EPISODES_FOR_THRESHOLD, train  # noqa: E402
from workers.events import EventKind, ListSink  # noqa: E402


def one_run(mode: str, seed: int, timesteps: int, env_id: str, teacher: str) -> dict:
    config = RunConfig(
        env_id=env_id,
        mode=Mode(mode),
        seed=seed,
        total_timesteps=timesteps,
        teacher_model=teacher,
        frame_interval_s=0.1,  # as when someone watches
        eval_interval=0,
    )
    sink = ListSink()
    with tempfile.TemporaryDirectory() as out:
        summary = train(config, sink, out_dir=out)
    wall_to = None
    crossed = False
    for event in sink.events:
        if event.kind == EventKind.METRICS and not crossed:
            ret, n = event.data["mean_return"], event.data["episodes"]
            crossed = ret is not None and n >= MIN_EPISODES_FOR_THRESHOLD and ret >= 0.9
        elif event.kind == EventKind.PROGRESS and crossed:
            wall_to = event.data["elapsed_s"]
            break
    summary["wall_s_to_0_9"] = wall_to
    return summary


def _median(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(value, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def table(summaries: list[dict], seeds: int) -> str:
    rows = [
        "| mode | runs reaching 0.9 | frames to 0.9 (median) | wall s to 0.9 (median) | env steps/s | "
        "final eval return | teacher acc. start → end | LLM calls / 1k steps |",
        "|---|---|---|---|---|---|---|---|",
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
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/modes.json"))
    args = parser.parse_args()
    jobs = [(m, s) for m in args.modes.split(",") for s in range(args.seeds)]
    start = time.time()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(one_run, m, s, args.timesteps, args.env, args.teacher) for m, s in jobs]
        summaries = []
        for (mode, seed), future in zip(jobs, futures):
            summaries.append(future.result())
            print(f"done {mode} seed {seed} ({time.time() - start:.0f} s)", file=sys.stderr, flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summaries, indent=2))
    print(f"{args.env}, {args.timesteps:,} frames per run, {args.seeds} seeds, {args.workers} runs at a time, "
          f"teacher {args.teacher}\n")
    print(table(summaries, args.seeds))


if __name__ == "__main__":
    main()
