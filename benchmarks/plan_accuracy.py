"""How often does the teacher name the BabyAI bot's subgoal, per level?

    .venv/bin/python benchmarks/plan_accuracy.py [--probes 200] [--model M] [--level ENV ...]

For each level: the plan probes the engine measures plan accuracy on
(``workers.subgoal_guidance.collect_plan_probes``: states of episodes that follow the bot, with
random steps, and the bot's current subgoal), and the share of them where the teacher's subgoal
(constrained scoring over the state's candidates, as in a run) is the bot's (``Subgoal.same_as``):

* zero-shot;
* with feedback on its wrong choices: each subgoal it chose that is not the bot's is reported
  failed in the engine's words and taken out of the choices, at most ``--rounds`` times: the
  ceiling of what the student's feedback can do for this teacher (in a run only the subgoals
  the student found failing are reported);
* the chance baseline: a uniform pick among the candidates.

Also the share of probes with one candidate (nothing to choose), and the LLM calls and their
mean latency. Prints one table and writes ``benchmarks/results/plan_accuracy.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workers.config import RunConfig  # noqa: E402
from workers.levels import bot_can_play  # noqa: E402
from workers.plan_teacher import PlanQuestion, PlanTeacher  # noqa: E402
from workers.subgoal_guidance import LLMPlanner, PlanProbe, collect_plan_probes  # noqa: E402
from workers.subgoal_guidance import feedback_sentence, tried_in_vain  # noqa: E402
from workers.subgoals import Subgoal  # noqa: E402

LEVELS = (
    "BabyAI-GoToRedBallNoDists-v0",
    "BabyAI-GoToRedBall-v0",
    "BabyAI-GoToLocal-v0",
    "BabyAI-OpenRedDoor-v0",
    "BabyAI-UnlockLocal-v0",
    "BabyAI-PickupLoc-v0",
    "BabyAI-KeyCorridorS3R1-v0",
    "BabyAI-UnblockPickup-v0",
)


def plan_after_feedback(teacher: PlanTeacher, probe: PlanProbe, rounds: int) -> tuple[Subgoal | None, Subgoal | None]:
    """(zero-shot subgoal, subgoal after at most ``rounds`` of feedback on wrong choices)."""
    failed: list[Subgoal] = []
    first = chosen = None
    for round_ in range(rounds + 1):
        question = PlanQuestion.of(probe.state, frozenset(failed))
        if not question.choices:
            return first, None
        sentence = feedback_sentence([tried_in_vain(s.text) for s in failed])  # what PlanMemory sends
        chosen = LLMPlanner.choose(question, teacher.ask(question, sentence))
        if round_ == 0:
            first = chosen
        if chosen is None or probe.subgoal.same_as(chosen):
            break
        failed.append(chosen)
    return first, chosen


def measure(teacher: PlanTeacher, env_id: str, probes: int, rounds: int) -> dict[str, float | int]:
    found = collect_plan_probes(env_id, probes, seed=0)
    zero = heard = chance = single = 0.0
    for probe in found:
        choices = PlanQuestion.of(probe.state).choices
        chance += sum(probe.subgoal.same_as(c) for c in choices) / len(choices) if choices else 0.0
        single += len(choices) == 1
        first, last = plan_after_feedback(teacher, probe, rounds)
        zero += probe.subgoal.same_as(first)
        heard += probe.subgoal.same_as(last)
    n = len(found)
    if not n:
        return {"probes": 0, "distinct_states": 0}
    return {
        "probes": n,
        "distinct_states": len({p.state.key for p in found}),
        "zero_shot": zero / n,
        "with_feedback": heard / n,
        "chance": chance / n,
        "one_candidate": single / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=RunConfig.teacher_model)
    parser.add_argument("--level", action="append", help=f"repeatable (default: {', '.join(LEVELS)})")
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="feedback rounds on a wrong choice")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/plan_accuracy.json"))
    args = parser.parse_args()
    teacher = PlanTeacher(args.model, timeout_s=120)
    print(f"teacher {args.model}, {args.probes} plan probes per level (seed 0), up to {args.rounds} feedback rounds\n")
    print("| level | probes (distinct states) | zero-shot | with feedback on wrong choices | chance | one candidate |")
    print("|---|---|---|---|---|---|")
    levels = {}
    for env_id in args.level or LEVELS:
        if not bot_can_play(env_id):
            print(f"| {env_id} | the BabyAI bot cannot play it | | | | |")
            continue
        row = levels[env_id] = measure(teacher, env_id, args.probes, args.rounds)
        if not row["probes"]:
            print(f"| {env_id} | no plan state where the bot names an object | | | | |")
            continue
        print(f"| {env_id} | {row['probes']} ({row['distinct_states']}) | {row['zero_shot']:.3f} | "
              f"{row['with_feedback']:.3f} | {row['chance']:.3f} | {row['one_candidate']:.2f} |", flush=True)
    calls, latency = teacher.stats.calls, teacher.stats.mean_latency_ms
    teacher.close()
    print(f"\n{calls} LLM calls, {latency:.0f} ms each on average")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "model": args.model, "probes": args.probes, "rounds": args.rounds, "llm_calls": calls,
        "ms_per_call": latency, "levels": levels,
    }, indent=2))


if __name__ == "__main__":
    main()
