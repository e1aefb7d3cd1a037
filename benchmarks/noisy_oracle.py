#!/usr/bin/env python
"""How right must a teacher be? The oracle (minigrid's BabyAI bot) with a chosen share of the
abstract situations answered wrong, through the engine's guidance as it is, against the frames
PPO needs to reach the level's return threshold.

A situation (``Situation.key``, what the LLM teacher is asked about) is answered wrong with
probability ``--wrong`` (drawn once per situation and seed, as an LLM's mistakes stick to a
situation): its advice is the action after the bot's (held as confidently as the oracle's),
everywhere else the bot's. No feedback corrects it: this is the teacher a unidirectional run
would have, and what the student's verdicts have to repair in a bidirectional one. Each row:
the share of guided steps whose advice was the bot's (the teacher's accuracy as the student
met it), runs that reached the threshold, their median frames to it (a run that never did
counts as its budget) and the speed-up against ``--ppo-frames`` (PPO alone's median on this
level, benchmarks/results/speedup.json by default).

    .venv/bin/python benchmarks/noisy_oracle.py --wrong 0,0.1,0.25,0.4 --seeds 3

Writes ``--json`` (default benchmarks/results/noisy_oracle.json): {"level", "budget", "threshold",
"ppo_frames", "rows": [{"wrong", "accuracy", "reached", "median_frames", "speedup", "runs"}]}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workers import engine  # noqa: E402
from workers.config import Mode, RunConfig  # noqa: E402
from workers.events import ListSink  # noqa: E402
from workers.guidance import OracleGuidance, held, uniform  # noqa: E402

LEVEL, THRESHOLD, BUDGET = "BabyAI-GoToRedBallNoDists-v0", 0.9, 40960


class NoisyOracle(OracleGuidance):
    """The bot's advice, but the action after it in the situations drawn as wrong."""

    def __init__(self, wrong: float, seed: int) -> None:
        self.wrong, self.seed = wrong, seed
        self.right_steps = self.guided_steps = 0

    def _is_wrong(self, key: str) -> bool:
        return zlib.crc32(f"{self.seed}:{key}".encode()) / 2**32 < self.wrong

    def advise(self, situation, expert):  # type: ignore[no-untyped-def]
        n = len(situation.actions)
        if expert is None:
            return uniform(n), 0.0
        self.guided_steps += 1
        if self._is_wrong(situation.key):
            return held((expert + 1) % n, n), 1.0
        self.right_steps += 1
        return held(expert, n), 1.0


def one_run(job: tuple[float, int, str]) -> dict[str, Any]:
    """Train one seed with the noisy oracle (in a process of its own); its summary and accuracy."""
    import torch

    torch.set_num_threads(1)
    wrong, seed, out = job
    guidance = NoisyOracle(wrong, seed)
    engine.guidance_for = lambda config, actions: guidance  # this process only
    config = RunConfig(env_id=LEVEL, mode=Mode.ORACLE, seed=seed, total_timesteps=BUDGET, eval_interval=0,
                       frame_interval_s=0.1, return_threshold=THRESHOLD)
    summary = engine.train(config, ListSink(), out_dir=Path(out) / f"wrong{wrong}-seed{seed}")
    return {"wrong": wrong, "seed": seed, "accuracy": guidance.right_steps / max(1, guidance.guided_steps),
            "frames_to_threshold": summary["frames_to_threshold"], "final_eval_return": summary["final_eval_return"],
            "wall_s": summary["wall_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wrong", default="0,0.1,0.25,0.4", help="shares of situations answered wrong")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ppo-frames", type=float, help="PPO alone's median frames to the threshold "
                        "(default: benchmarks/results/speedup.json's)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/noisy-oracle"))
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "noisy_oracle.json")
    args = parser.parse_args()
    ppo = args.ppo_frames or json.loads((ROOT / "benchmarks" / "results" / "speedup.json").read_text())[
        "levels"][LEVEL]["modes"]["ppo"]["median_frames_to_threshold"]
    jobs = [(float(w), seed, str(args.out)) for w in args.wrong.split(",") for seed in range(args.seeds)]
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        runs = pool.map(one_run, jobs, chunksize=1)
    rows = []
    print(f"{LEVEL}, threshold {THRESHOLD}, {BUDGET:,} frames; PPO alone's median {ppo:,.0f} frames")
    print(f"{'wrong':>6} {'accuracy':>9} {'reached':>8} {'median frames':>14} {'speed-up':>9}  per seed")
    for wrong in sorted({r["wrong"] for r in runs}):
        mine = [r for r in runs if r["wrong"] == wrong]
        frames = [r["frames_to_threshold"] or BUDGET for r in mine]
        median = statistics.median(frames)
        row = {"wrong": wrong, "accuracy": statistics.mean(r["accuracy"] for r in mine),
               "reached": sum(r["frames_to_threshold"] is not None for r in mine), "median_frames": median,
               "speedup": ppo / median, "runs": mine}
        rows.append(row)
        seeds = " / ".join(f"{r['frames_to_threshold']:,}" if r["frames_to_threshold"] else "never" for r in mine)
        print(f"{wrong:>6.2f} {row['accuracy']:>9.3f} {row['reached']:>5}/{len(mine)} {median:>14,.0f} "
              f"{row['speedup']:>8.2f}x  {seeds}")
    args.json.write_text(json.dumps({"level": LEVEL, "budget": BUDGET, "threshold": THRESHOLD, "ppo_frames": ppo,
                                     "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
