"""How good is each installed teacher model, alone and when it hears the student?

    .venv/bin/python benchmarks/teacher_accuracy.py [--probes 200] [MODEL ...]

For each model: agreement with minigrid's BabyAI bot on probe states of
GoToRedBallNoDists (zero-shot), then the same with the feedback sentence a student would send
if its verdict for each situation were right (the bot's most frequent action there): the
ceiling of what feedback can do for that model. Also the mean latency of one LLM call, and
the always-forward baseline. Prints one table.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workers.evaluation import collect_probes, probe_accuracy  # noqa: E402
from workers.feedback import FeedbackMemory  # noqa: E402
from workers.levels import action_subset  # noqa: E402
from workers.teachers import LLMTeacher, available_models  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="default: every installed model")
    parser.add_argument("--env", default="BabyAI-GoToRedBallNoDists-v0")
    parser.add_argument("--probes", type=int, default=200)
    args = parser.parse_args()
    actions = action_subset(args.env)
    probes = collect_probes(args.env, args.probes, seed=0)
    votes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for p in probes:
        votes[p.situation.key][p.expert_action] += 1
    # The sentence FeedbackMemory would send for a verdict equal to the bot's majority action.
    memory = FeedbackMemory(actions, min_visits=1, confidence=0.0)
    for key, counter in votes.items():
        best, other = counter.most_common(1)[0][0], (counter.most_common(1)[0][0] + 1) % len(actions)
        memory.update([key] * 4, np.array([best, best, other, other]), np.array([1.0, 1.0, 0.0, 0.0]))
    forward = actions.index("forward")
    print(f"{args.env}: {len(probes)} probe states, {len(votes)} distinct situations; "
          f"always-forward agrees with the bot on {sum(p.expert_action == forward for p in probes) / len(probes):.3f}\n")
    print("| model | zero-shot accuracy | with right feedback | ms per LLM call |")
    print("|---|---|---|---|")
    for name in args.models or list(available_models()):
        teacher = LLMTeacher(name, actions, timeout_s=60)
        zero = probe_accuracy(lambda s: teacher.ask(s, None), probes).share
        heard = probe_accuracy(lambda s: teacher.ask(s, memory.sentence(s.key)), probes).share
        print(f"| {name} | {zero:.3f} | {heard:.3f} | {teacher.stats.mean_latency_ms:.0f} |", flush=True)
        teacher.close()


if __name__ == "__main__":
    main()
