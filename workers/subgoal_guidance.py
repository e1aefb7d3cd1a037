"""Subgoal guidance: the teacher plans, the student is shaped toward the plan, and reports back.

    SubgoalGuidance   the guidance object (``workers.guidance``'s interface) of the subgoal
                      kind: it advises no actions; its planner sets each environment's current
                      subgoal, toward which the student's reward is shaped (``workers.shaping``)
    BotPlanner        minigrid's BabyAI bot's current subgoal (the oracle)
    LLMPlanner        the LLM's choice among the candidate subgoals (``workers.plan_teacher``);
                      given a PlanMemory (bidirectional), the student's record with each plan
                      goes into the teacher's prompt, and a plan it keeps failing is dropped
    PlanMemory        per (plan state, subgoal): how often it was chosen, reached, and followed
                      by the level's reward

The student's feedback on plans is what happened in its own episodes: a subgoal never reached
whose own action (pickup, toggle, drop) the student took ``FAILED_ATTEMPTS`` times where the way
to it ends, or one reached ``min_tries`` times and never followed by the level's reward while
other episodes from that plan state were, or one with no way to it in ``FAILED_ATTEMPTS``
episodes, has *failed* there. The sentence the teacher then
reads names it ("open the yellow door: tried 3 times, it did not work"), and the teacher answers that plan state again, choosing among the subgoals
that have not failed there; a state where all have failed is a *plan loop*, counted, and gets
no subgoal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from workers.config import Mode, RunConfig
from workers.evaluation import ProbeAccuracy, bot_walk
from workers.guidance import EnvironmentAdvice
from workers.levels import make_env
from workers.plan_teacher import PlanQuestion, PlanTeacher
from workers.teachers import idle_cores
from workers.shaping import PlannedEnv, PlanOutcome
from workers.subgoals import PlanState, Renaming, Subgoal, bot_subgoal

FAILED_ATTEMPTS = 3
"""A subgoal never reached whose own action (pickup, toggle, drop) was taken this many times
where the way to it ends, and did nothing, has failed there: a locked door without its key.
(Counting tries alone judged the student: "open the door", carrying its key, was reached in 0
of 8 early episodes, and was ruled out where it was the right plan.)"""


def tried_in_vain(text: str) -> str:
    """Why a subgoal whose own action did nothing failed, as the teacher reads it."""
    return f"{text}: tried {FAILED_ATTEMPTS} times, it did not work"


def feedback_sentence(reasons: list[str]) -> str | None:
    """The feedback the teacher reads for a plan state whose subgoals failed for ``reasons``."""
    if not reasons:
        return None
    return "Feedback from the student: these did not work here: " + "; ".join(sorted(reasons)) + "."


@dataclass
class PlanRecord:
    chosen: int = 0
    reached: int = 0
    attempts: int = 0
    """Its own action taken where the way to it ends, without achieving it."""
    no_way: int = 0
    """Episodes in which there was no way to it."""
    rewarded: int = 0
    """Episodes that reached it and then got the level's reward."""
    steps: int = 0
    """Steps from choosing it to reaching it, summed over the episodes that reached it."""


class PlanMemory:
    """The student's record with each subgoal in each plan state, pooled over the plan states
    that differ only by their colours (``Renaming``)."""

    def __init__(self, min_tries: int = 8):
        self.min_tries = min_tries
        self.records: dict[str, dict[Subgoal, PlanRecord]] = {}
        """By renamed plan state, then renamed subgoal."""
        self.rewarded_states: set[str] = set()
        """Renamed plan states from which some episode got the level's reward."""

    def record(self, outcomes: list[PlanOutcome]) -> None:
        for outcome in outcomes:
            names = Renaming.of(outcome.state)
            rec = self.records.setdefault(names.key, {}).setdefault(names.abstract(outcome.subgoal), PlanRecord())
            rec.chosen += 1
            rec.attempts += outcome.attempts
            rec.no_way += int(outcome.no_way)
            if outcome.reached_at is not None:
                rec.reached += 1
                rec.steps += outcome.reached_at - outcome.chosen_at
                rec.rewarded += int(outcome.rewarded)
            if outcome.rewarded:
                self.rewarded_states.add(names.key)

    def _failure(self, key: str, rec: PlanRecord, text: str) -> str | None:
        # The thresholds, not the counts, are in the sentence: a count that grows would make a new
        # prompt, and a new LLM call, with every try.
        if rec.reached == 0 and rec.attempts >= FAILED_ATTEMPTS:
            return tried_in_vain(text)
        if rec.reached == 0 and rec.no_way >= FAILED_ATTEMPTS:
            return f"{text}: there was no way to it"
        if rec.reached >= self.min_tries and rec.rewarded == 0 and key in self.rewarded_states:
            return f"{text}: reached {self.min_tries} times, and the mission never succeeded after it"
        return None

    def failures(self, state: PlanState) -> dict[Subgoal, str]:
        """The subgoals that have failed in ``state`` (in its colours), each with why, as the
        teacher reads it."""
        names = Renaming.of(state)
        found = {}
        for abstract, rec in self.records.get(names.key, {}).items():
            subgoal = names.concrete(abstract)
            why = self._failure(names.key, rec, subgoal.text)
            if why is not None:
                found[subgoal] = why
        return found

    def sentence(self, state: PlanState, failures: dict[Subgoal, str] | None = None) -> str | None:
        """The feedback the teacher reads for this plan state: the subgoals that failed here
        (``failures``, when the caller has them already)."""
        return feedback_sentence(list((self.failures(state) if failures is None else failures).values()))

    @property
    def states_with_feedback(self) -> int:
        """Renamed plan states with a failed subgoal."""
        return sum(
            any(self._failure(key, rec, s.text) is not None for s, rec in subgoals.items())
            for key, subgoals in self.records.items()
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "records": [[k, s.key, r.chosen, r.reached, r.attempts, r.no_way, r.rewarded, r.steps]
                        for k, subgoals in self.records.items() for s, r in subgoals.items()],
            "rewarded_states": sorted(self.rewarded_states),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.records = {}
        for k, s, c, r, a, x, w, n in state.get("records", []):
            self.records.setdefault(k, {})[Subgoal.from_key(s)] = PlanRecord(c, r, a, x, w, n)
        self.rewarded_states = set(state.get("rewarded_states", []))


class BotPlanner:
    """minigrid's BabyAI bot's current subgoal: the oracle's plans."""

    needs_expert = True
    teacher = None

    def plan(self, state: PlanState, env: PlannedEnv) -> Subgoal | None:
        bot = env.env.bot  # type: ignore[attr-defined]
        return bot_subgoal(bot) if bot is not None else None

    def record(self, outcomes: list[PlanOutcome]) -> None:
        pass

    def feedback(self, state: PlanState) -> str | None:
        return None


class LLMPlanner:
    """The LLM's choice among the candidate subgoals of each plan state (asked once per state,
    and again when the student's feedback for it changes). Bidirectional: the subgoals that
    failed in a state are named in the teacher's prompt and taken out of its choices there, so
    its revised plan is one the student has not ruled out; a state where every candidate failed
    is a *plan loop*, counted, and gets no subgoal."""

    needs_expert = False

    def __init__(self, teacher: PlanTeacher, memory: PlanMemory | None = None):
        self.teacher = teacher
        self.memory = memory
        self.looped: set[str] = set()
        """Plan states where every candidate subgoal has failed."""
        self.without_way = 0
        """Subgoals chosen where there was no way to them on the grid (an episode each)."""
        self.enabled = True

    def feedback(self, state: PlanState) -> str | None:
        return self.memory.sentence(state) if self.memory else None

    def question(self, state: PlanState, *, with_feedback: bool = True) -> tuple[PlanQuestion, str | None]:
        """What the teacher is asked about ``state``: the question and the feedback sentence."""
        if not with_feedback or self.memory is None:
            return PlanQuestion.of(state), None
        failures = self.memory.failures(state)  # once: this runs every step of every environment
        return PlanQuestion.of(state, frozenset(failures)), self.memory.sentence(state, failures)

    @staticmethod
    def choose(question: PlanQuestion, answer: np.ndarray | None) -> Subgoal | None:
        if answer is None or not question.choices:
            return None
        return question.choices[int(np.argmax(answer))]

    def plan(self, state: PlanState, env: PlannedEnv | None = None) -> Subgoal | None:
        if not self.enabled:
            return None
        question, feedback = self.question(state)
        if not question.choices:
            if feedback is not None:
                self.looped.add(state.key)
            return None
        return self.choose(question, self.teacher.current(question, feedback))  # type: ignore[arg-type]

    def record(self, outcomes: list[PlanOutcome]) -> None:
        self.without_way += sum(o.no_way for o in outcomes)
        if self.memory is not None:
            self.memory.record(outcomes)


@dataclass(frozen=True)
class PlanProbe:
    state: PlanState
    subgoal: Subgoal
    """The BabyAI bot's subgoal there."""


def collect_plan_probes(env_id: str, n: int, seed: int) -> list[PlanProbe]:
    """``n`` plan states with the bot's subgoal (``evaluation.bot_walk``; states where the bot's
    stack names no object are left out)."""
    env = PlannedEnv(make_env(env_id, expert=True), BotPlanner(), gamma=1.0, scale=0.0)
    return bot_walk(env, n, seed, lambda e: PlanProbe(e.plan_state, e.subgoal) if e.subgoal is not None else None)


class SubgoalGuidance(EnvironmentAdvice):
    """Guidance by plans: the planner's subgoal shapes the reward, and the first step of the
    shortest way to it is the advice (held at 0.95, weight 1), as the bot's action is the
    oracle's. Where there is no subgoal, or no way to it, nothing is advised."""

    advice_attr = "subgoal_action"

    def __init__(self, planner: BotPlanner | LLMPlanner, *, source: str):
        self.planner = planner
        self.source = source
        self.needs_expert = planner.needs_expert
        self.teacher = planner.teacher
        self.probes: list[PlanProbe] = []

    def prepare(self, probes: list, should_stop: Callable[[], bool]) -> None:
        """The teacher answers the probes' plan states before the student starts."""
        if isinstance(self.planner, LLMPlanner):
            self.planner.teacher.prepare(
                [PlanQuestion.of(p.state) for p in self.probes], threads=idle_cores(), should_stop=should_stop
            )

    def accuracy(self, probes: list, *, wait: bool, with_feedback: bool = True) -> tuple[ProbeAccuracy, ProbeAccuracy]:
        """Plan accuracy (``Guidance.accuracy`` on the plan probes; ``probes``, the action
        probes, are not used): the share of the plan probes where the teacher's subgoal is the
        bot's, and on those whose plan state has no feedback."""
        planner = self.planner
        if not isinstance(planner, LLMPlanner):
            none = ProbeAccuracy(None, 0, 0)
            return none, none
        teacher, scored = planner.teacher, []
        for probe in self.probes:
            question, feedback = planner.question(probe.state, with_feedback=with_feedback)
            answer = (teacher.ask if wait else teacher.latest)(question, feedback) if question.choices else None  # type: ignore[arg-type]
            chosen = planner.choose(question, answer)
            if chosen is not None:  # (not an earlier answer to other choices)
                unjudged = feedback is None if with_feedback else planner.feedback(probe.state) is None
                scored.append((unjudged, probe.subgoal.same_as(chosen)))

        def share(rows: list) -> ProbeAccuracy:
            return ProbeAccuracy(sum(hit for _, hit in rows) / len(rows) if rows else None, len(rows), len(self.probes))

        return share(scored), share([row for row in scored if row[0]])

    def metrics(self) -> dict[str, Any]:
        planner = self.planner
        if not isinstance(planner, LLMPlanner):
            return {}
        return {
            "plan_loops": len(planner.looped),
            "plans_without_way": planner.without_way,
            "feedback_situations": planner.memory.states_with_feedback if planner.memory else 0,
        }

    def state_dict(self) -> dict[str, Any]:
        if not isinstance(self.planner, LLMPlanner):
            return {}
        return {
            "looped": sorted(self.planner.looped),
            "without_way": self.planner.without_way,
            "memory": self.planner.memory.state_dict() if self.planner.memory else {},
            "teacher": self.planner.teacher.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(self.planner, LLMPlanner):
            return
        self.planner.looped = set(state.get("looped", []))
        self.planner.without_way = state.get("without_way", 0)
        if self.planner.memory is not None:
            self.planner.memory.load_state_dict(state.get("memory") or {})
        if state.get("teacher"):
            self.planner.teacher.load_state_dict(state["teacher"])

    def close(self) -> None:
        if isinstance(self.planner, LLMPlanner):
            self.planner.enabled = False
        if self.teacher is not None:
            self.teacher.close()


def subgoal_guidance_for(config: RunConfig) -> SubgoalGuidance:
    """The subgoal guidance of ``config``'s mode (one that guides the student)."""
    if config.mode == Mode.ORACLE:
        return SubgoalGuidance(BotPlanner(), source="oracle")
    teacher = PlanTeacher(config.teacher_model, timeout_s=config.teacher_timeout_s)
    memory = PlanMemory(config.feedback_min_visits) if config.mode == Mode.BIDIRECTIONAL else None
    guidance = SubgoalGuidance(LLMPlanner(teacher, memory), source="llm")
    guidance.probes = collect_plan_probes(config.env_id, config.probe_states, config.seed)
    return guidance
