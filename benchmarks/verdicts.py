"""How right is the student's feedback over a run, by verdict rule?

    .venv/bin/python benchmarks/verdicts.py --timesteps 40960 --seeds 0,1,2,3

One bidirectional run per seed (``--workers`` at a time). The run's own feedback memory uses
the engine's rule: actions compared within each rollout, the comparisons pooled, a verdict
once an action wins by ``feedback_confidence`` standard errors (``workers/feedback.py``). A
second memory, fed the same rollouts, ranks actions by their mean advantage over the whole run
(the engine's rule until 2026-12-01: a verdict once two actions have ``feedback_min_visits``
tries and the best leads by 0.02); it changes nothing in the run. Every ``--every`` frames, for
each rule, the share of the run's probe states whose situation has a verdict (judged) and
whose verdict is the BabyAI bot's action there (right), and the teacher's accuracy as the
engine logs it. Prints the medians over seeds.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workers import engine, guidance  # noqa: E402
from workers.config import Mode, RunConfig  # noqa: E402
from workers.evaluation import Probe, collect_probes  # noqa: E402
from workers.events import Event, EventKind  # noqa: E402
from workers.feedback import FeedbackMemory  # noqa: E402

RULES = ("mean advantage over the run", "engine's rule")


class MeanAdvantageMemory:
    """The verdicts of a running mean advantage per (situation, action)."""

    def __init__(self, actions: tuple[str, ...], min_visits: int, margin: float = 0.02):
        self.n, self.min_visits, self.margin = len(actions), min_visits, margin
        self.count: dict[str, np.ndarray] = {}
        self.mean: dict[str, np.ndarray] = {}
        self._verdicts: dict[str, int] = {}

    def update(self, keys, actions, advantages) -> None:
        for key, action, advantage in zip(keys, np.asarray(actions).ravel(), np.asarray(advantages).ravel()):
            count = self.count.setdefault(key, np.zeros(self.n))
            mean = self.mean.setdefault(key, np.zeros(self.n))
            count[action] += 1
            mean[action] += (advantage - mean[action]) / count[action]
        for key in set(keys):
            tried = np.flatnonzero(self.count[key] >= self.min_visits)
            if len(tried) >= 2:
                ranked = tried[np.argsort(-self.mean[key][tried])]
                if self.mean[key][ranked[0]] - self.mean[key][ranked[1]] >= self.margin:
                    self._verdicts[key] = int(ranked[0])

    def verdicts(self) -> dict[str, int]:
        return dict(self._verdicts)


def _right_and_judged(memory: FeedbackMemory | MeanAdvantageMemory, probes: list[Probe]) -> tuple[float, float]:
    verdicts = memory.verdicts()
    judged = [p for p in probes if p.situation.key in verdicts]
    right = sum(verdicts[p.situation.key] == p.expert_action for p in judged)
    return right / len(probes), len(judged) / len(probes)


class _Recorder:
    """The run's sink: at every ``every`` frames, both rules' verdicts against the probes."""

    def __init__(self, probes: list[Probe], memories: dict, every: int):
        self.probes, self.memories, self.every = probes, memories, every
        self.rows: list[dict] = []

    def emit(self, event: Event) -> None:
        if event.kind != EventKind.METRICS or event.timestep % self.every:
            return
        row = {"frames": event.timestep, "teacher": event.data["teacher_accuracy"]}
        for rule, memory in self.memories.items():
            row[rule] = _right_and_judged(memory, self.probes)
        self.rows.append(row)

    def close(self) -> None:
        pass


def run_seed(seed: int, timesteps: int, every: int) -> list[dict]:
    """One bidirectional run of ``timesteps`` frames; ``_Recorder``'s rows."""
    config = RunConfig(mode=Mode.BIDIRECTIONAL, total_timesteps=timesteps, seed=seed, eval_interval=0,
                       frame_interval_s=0, hint_interval_s=0, checkpoint_interval=0)
    memories: dict = {}

    def memory_with_shadow(actions: tuple[str, ...], **kwargs) -> FeedbackMemory:
        live = FeedbackMemory(actions, **kwargs)
        shadow = MeanAdvantageMemory(actions, kwargs["min_visits"])
        update = live.update

        def update_both(keys, actions, advantages):  # type: ignore[no-untyped-def]
            keys = list(keys)
            shadow.update(keys, actions, advantages)
            return update(keys, actions, advantages)

        live.update = update_both  # type: ignore[method-assign]
        memories.update({RULES[0]: shadow, RULES[1]: live})
        return live

    guidance.FeedbackMemory = memory_with_shadow  # type: ignore[assignment,misc]
    # The same probe states the engine draws for this seed.
    recorder = _Recorder(collect_probes(config.env_id, config.probe_states, seed), memories, every)
    with tempfile.TemporaryDirectory() as out:
        engine.train(config, recorder, out_dir=out)
    return recorder.rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=40960)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--every", type=int, default=8192, help="frames between rows (a multiple of 1,024)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = list(pool.map(run_seed, seeds, [args.timesteps] * len(seeds), [args.every] * len(seeds)))
    print(f"BabyAI-GoToRedBallNoDists-v0, bidirectional, {args.timesteps:,} frames, seeds {args.seeds}; "
          "medians over seeds of the share of probe states\n")
    print("| frames | teacher accuracy | " + " | ".join(f"{r}: verdict right (judged)" for r in RULES) + " |")
    print("|---|---|" + "---|" * len(RULES))
    for rows in zip(*runs):
        teacher = [r["teacher"] for r in rows if r["teacher"] is not None]
        cells = [f"{rows[0]['frames']:,}", f"{np.median(teacher):.2f}" if teacher else "—"]
        for rule in RULES:
            right, judged = np.median([r[rule] for r in rows], axis=0)
            cells.append(f"{right:.2f} ({judged:.2f})")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
