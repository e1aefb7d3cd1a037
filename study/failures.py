"""Where the level's bidirectional mode (``aggregate.tested_mode``: with the level's guidance
kind) loses, computed from the study's data (nothing here is typed by hand).

Three views:

* **levels**: the significance tests in which it comes out worse (A12 < 0.5) than another mode;
* **seeds**: per seed, the modes whose run *on the same seed* (same layouts, same initial
  network) had a higher return AUC than its run, with that run's teacher accuracy at the start
  and end;
* **situations where the teacher stays wrong** (action guidance): the engine's HINT events carry, every
  ``hint_interval_s``, the situation (text and key), the teacher's distribution and the student's
  feedback sentence there. The right action per situation comes from the BabyAI bot on the same
  probe states the engine measures teacher accuracy on (``workers.evaluation.collect_probes``,
  deterministic per seed): a situation key's right action is the bot's most frequent one there.
  For each bidirectional run and each judged situation its hints met, the teacher's first and
  last answer (most likely action) give: right throughout, fixed (wrong, then right), stays
  wrong, or broken (right, then wrong). A wrong last answer has a cause: no verdict (the
  student never sent feedback there), wrong verdict (the student's feedback names another action
  than the bot, and the teacher follows it or not), or ignored (the feedback names the bot's
  action and the teacher still answers otherwise);
* **plan states where the teacher's subgoal stays wrong** (subgoal guidance): the same from the
  hints' ``plan`` (the plan state in words, the current subgoal, the feedback the teacher read),
  judged against the bot's subgoal on the plan probes the engine measures plan accuracy on
  (``workers.subgoal_guidance.collect_plan_probes``), as the engine judges them
  (``Subgoal.same_as``: a subgoal without a colour matches any); a wrong last subgoal's cause
  is no feedback (the student reported nothing failing there yet), wrong feedback (the student
  reported the bot's own subgoal failing there, which takes it out of the teacher's choices),
  or feedback ignored (the student's report names other subgoals, and the teacher still chose
  another than the bot's).

Hints are a sample (environment 0, at most one per ``hint_interval_s``), so the situation view
covers the situations met often; ``coverage`` says which share of the probe states it judges.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from functools import lru_cache
from typing import Any

import numpy as np

from study.aggregate import METRIC, tested_mode
from study.data import RunData, StudyData
from workers.config import GuidanceKind
from workers.evaluation import collect_probes
from workers.feedback import FeedbackMemory
from workers.levels import action_subset
from workers.subgoal_guidance import collect_plan_probes
from workers.subgoals import Subgoal

WORST_SITUATIONS = 8
"""Situations listed per level in the report."""


@lru_cache(maxsize=None)
def bot_actions(env_id: str, probe_states: int, seeds: tuple[int, ...]) -> dict[str, Counter]:
    """Per situation key, how often the BabyAI bot chose each action on the probe states of
    ``seeds`` (the ones the engine measured teacher accuracy on)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for seed in seeds:
        for probe in collect_probes(env_id, probe_states, seed):
            counts[probe.situation.key][probe.situation.actions[probe.expert_action]] += 1
    return dict(counts)


@lru_cache(maxsize=None)
def bot_subgoals(env_id: str, probe_states: int, seeds: tuple[int, ...]) -> dict[str, Counter]:
    """Per plan state (in words, as the hints carry it), how often the BabyAI bot's current
    subgoal was each one on the plan probes of ``seeds``."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for seed in seeds:
        for probe in collect_plan_probes(env_id, probe_states, seed):
            counts[probe.state.text][probe.subgoal.text] += 1
    return dict(counts)


def feedback_verdicts(actions: tuple[str, ...]) -> dict[str, str]:
    """The engine's feedback sentence for each verdict -> that action, made by the engine's own
    FeedbackMemory so the mapping follows its wording."""
    memory = FeedbackMemory(actions)
    zeros = [0] * len(actions)
    memory.load_state_dict({a: {"count": zeros, "mean": [0.0] * len(actions), "verdict": i} for i, a in enumerate(actions)})
    return {memory.sentence(a): a for a in actions}  # type: ignore[misc]


def _answer(hint: dict[str, Any]) -> str | None:
    """The teacher's most likely action in a hint; None while it had not answered (uniform)."""
    distribution = hint.get("distribution") or {}
    probs = np.array(list(distribution.values()), dtype=float)
    if probs.size == 0 or np.allclose(probs, probs[0]):
        return None
    return list(distribution)[int(np.argmax(probs))]


def situation_outcomes(run: RunData, right: dict[str, str], verdicts: dict[str, str]) -> list[dict[str, Any]]:
    """Per judged situation the run's hints met: first and last answer, verdict, outcome, cause."""
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for hint in run.hints:
        if hint.get("situation_key") in right and _answer(hint) is not None:
            by_key[hint["situation_key"]].append(hint)
    rows = []
    for key, hints in by_key.items():
        first, last = _answer(hints[0]), _answer(hints[-1])
        bot = right[key]
        verdict = verdicts.get(hints[-1].get("feedback") or "")
        if first == bot:
            outcome = "right" if last == bot else "broken"
        else:
            outcome = "fixed" if last == bot else "stays_wrong"
        cause = None
        if last != bot:
            cause = "no_verdict" if verdict is None else ("ignored" if verdict == bot else "wrong_verdict")
        rows.append(
            {
                "key": key,
                "situation": hints[-1].get("situation", ""),
                "bot": bot,
                "first": first,
                "last": last,
                "verdict": verdict,
                "distribution": hints[-1].get("distribution"),
                "outcome": outcome,
                "cause": cause,
            }
        )
    return rows


def _seed_view(data: StudyData, env_id: str, tested: str) -> list[dict[str, Any]]:
    auc = METRIC["auc"].value
    modes = data.spec.modes_of(data.spec.level(env_id))
    by_mode = {mode: {r.key.seed: r for r in data.select(env_id, mode)} for mode in modes}
    rows = []
    for seed, bi in sorted(by_mode.get(tested, {}).items()):
        bi_auc = auc(bi)
        others = {mode: auc(runs[seed]) for mode, runs in by_mode.items() if mode != tested and seed in runs}
        rows.append(
            {
                "seed": seed,
                "auc": bi_auc,
                "reached": bi.summary.get("frames_to_threshold") is not None,
                "teacher_accuracy_start": bi.summary.get("teacher_accuracy_start"),
                "teacher_accuracy_end": bi.summary.get("teacher_accuracy_end"),
                "auc_others": others,
                "lost_to": sorted(m for m, v in others.items() if v is not None and bi_auc is not None and v > bi_auc),
            }
        )
    return rows


def plan_outcomes(run: RunData, right: dict[str, str]) -> list[dict[str, Any]]:
    """Per judged plan state the run's hints met: the teacher's first and last subgoal there,
    outcome and cause (as ``situation_outcomes``, for plans)."""
    by_state: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for hint in run.hints:
        plan = hint.get("plan") or {}
        if plan.get("state") in right and plan.get("subgoal"):
            by_state[plan["state"]].append(plan)
    rows = []
    for state, plans in by_state.items():
        first, last, bot = plans[0]["subgoal"], plans[-1]["subgoal"], right[state]
        expected = Subgoal.from_text(bot)
        first_right, last_right = expected.same_as(Subgoal.from_text(first)), expected.same_as(Subgoal.from_text(last))
        if first_right:
            outcome = "right" if last_right else "broken"
        else:
            outcome = "fixed" if last_right else "stays_wrong"
        feedback = plans[-1].get("feedback")
        cause = None
        if not last_right:
            # The sentence names each failed subgoal by its text (PlanMemory.sentence).
            cause = "no_feedback" if not feedback else "wrong_feedback" if f"{bot}:" in feedback else "feedback_ignored"
        rows.append(
            {"key": state, "situation": state, "bot": bot, "first": first, "last": last,
             "feedback": feedback, "outcome": outcome, "cause": cause}
        )
    return rows


def _situation_view(data: StudyData, env_id: str, tested: str) -> dict[str, Any]:
    """What the teacher said where, judged against the bot: situations and actions for action
    guidance, plan states and subgoals for subgoal guidance."""
    runs = data.select(env_id, tested)
    level = data.spec.level(env_id)
    # The probe states each run measured its teacher on (same count for every seed).
    probe_states = data.spec.config(level, tested, 0).probe_states
    if level.guidance_kind == GuidanceKind.SUBGOALS.value:
        counts = bot_subgoals(env_id, probe_states, tuple(data.spec.seeds))
        right = {key: c.most_common(1)[0][0] for key, c in counts.items()}

        def judge(run: RunData) -> list[dict[str, Any]]:
            return plan_outcomes(run, right)
    else:
        counts = bot_actions(env_id, probe_states, tuple(data.spec.seeds))
        right = {key: c.most_common(1)[0][0] for key, c in counts.items()}
        verdicts = feedback_verdicts(action_subset(env_id))

        def judge(run: RunData) -> list[dict[str, Any]]:
            return situation_outcomes(run, right, verdicts)
    weight = {key: sum(c.values()) for key, c in counts.items()}
    total_probes = sum(weight.values())
    outcomes: Counter = Counter()
    causes: Counter = Counter()
    wrong: dict[str, dict[str, Any]] = {}
    covered: list[float] = []
    for run in runs:
        rows = judge(run)
        covered.append(sum(weight[r["key"]] for r in rows) / total_probes if total_probes else 0.0)
        for row in rows:
            outcomes[row["outcome"]] += 1
            if row["cause"]:
                causes[row["cause"]] += 1
            if row["outcome"] in ("stays_wrong", "broken"):
                entry = wrong.setdefault(
                    row["key"],
                    {
                        "situation": row["situation"],
                        "bot": row["bot"],
                        "bot_agreement": counts[row["key"]][row["bot"]] / weight[row["key"]],
                        "probe_share": weight[row["key"]] / total_probes,
                        "seeds": [],
                        "answers": Counter(),
                        "causes": Counter(),
                    },
                )
                entry["seeds"].append(run.key.seed)
                entry["answers"][row["last"]] += 1
                entry["causes"][row["cause"]] += 1
    worst = sorted(wrong.values(), key=lambda e: (-len(e["seeds"]), -e["probe_share"]))[:WORST_SITUATIONS]
    return {
        "kind": level.guidance_kind,
        "runs": len(runs),
        "judged": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "causes": dict(causes),
        "coverage": float(np.mean(covered)) if covered else None,
        "worst": [{**e, "answers": dict(e["answers"]), "causes": dict(e["causes"])} for e in worst],
    }


def analyse(data: StudyData, aggregates: dict[str, Any]) -> dict[str, Any]:
    """The three views for every level that runs a bidirectional mode (``aggregates`` from
    ``study.aggregate.aggregate``)."""
    levels = []
    for level in aggregates["levels"]:
        env_id, tested = level["env_id"], level["tested_mode"]
        if tested is None:
            continue
        levels.append(
            {
                "env_id": env_id,
                "mode": tested,
                "losses": [t for t in level["tests"] if t["a12"] < 0.5],
                "seeds": _seed_view(data, env_id, tested),
                "situations": _situation_view(data, env_id, tested),
            }
        )
    return {"levels": levels}
