"""Where a run's guidance comes from: one object per source, behind one small interface.

For every rollout sample the engine asks the run's :class:`Guidance` for *advice*: a
distribution over the level's actions that the student's distillation step pulls toward, and
the sample's weight in that step (0: no guidance). After each rollout the engine hands the
guidance the student's experience in it (``learn``): that is where the student talks back to
the teacher. The guidance's state goes into checkpoints.

    Guidance         ppo (and the teacher acting alone): nothing is advised
    OracleGuidance   minigrid's BabyAI bot: its action for the exact state, held at 0.95
    LLMGuidance      the LLM teacher's answers, sharpened (unidirectional); given a
                     FeedbackMemory (bidirectional), the student's verdicts reach the
                     teacher's prompt and decide how far the student follows it
    SubgoalGuidance  (workers.subgoal_guidance) the teacher's plans: a planner (the bot, or
                     the LLM) names the next subgoal, the environments shape the reward toward
                     it, and the first step of the way to it is the advice

A new kind of guidance is a new class with these methods and one line in ``guidance_for``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from workers.config import GuidanceKind, Mode, RunConfig
from workers.evaluation import Probe, ProbeAccuracy, probe_accuracy
from workers.feedback import FeedbackMemory
from workers.situation import Situation
from workers.teachers import LLMTeacher, idle_cores

CONFIDENT = 0.95
"""The share an advised action gets when the advice is certain (the bot's, or an LLM answer the
student's own verdict confirms): the rest is spread over the other actions, so that the
distillation loss stays finite and the student keeps trying them now and then."""

RELIABILITY_PRIOR = 4.0
"""Pseudo-counts of agreement and of disagreement behind the teacher's measured reliability.
The first verdicts come where actions differ most, which is where a teacher errs: with one
pseudo-count each, one early disagreement made a good teacher (Qwen2.5-Coder-0.5B, 0.67
zero-shot) untrusted, and its run learned no faster than PPO alone."""


def held(action: int, n: int, share: float = CONFIDENT) -> np.ndarray:
    """``share`` on ``action``, the rest spread evenly over the other ``n - 1`` actions."""
    probs = np.full(n, (1 - share) / (n - 1))
    probs[action] = share
    return probs


def uniform(n: int) -> np.ndarray:
    return np.full(n, 1 / n)


def sharpen(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``probs ** (1 / temperature)``, renormalised."""
    logits = np.log(np.clip(probs, 1e-12, None)) / temperature
    sharp = np.exp(logits - logits.max())
    return sharp / sharp.sum()


class Guidance:
    """No guidance: the interface, and the student alone."""

    source = "none"
    """The hint events' ``source``."""
    needs_expert = False
    """Whether the environments must run the BabyAI bot alongside."""
    advice_attr: str | None = None
    """The environment attribute (an action index or None) that ``advise`` gets as ``expert``:
    the bot's action, or the first step toward the current subgoal."""
    teacher: LLMTeacher | None = None
    planner: Any = None
    """Subgoal guidance's planner (``workers.shaping.Planner``): the environments then shape
    the student's reward toward its subgoals. None for the other kinds."""

    @property
    def active(self) -> bool:
        """Whether samples are advised at all (the student alone skips reading situations)."""
        return False

    def advise(self, situation: Situation, expert: int | None) -> tuple[np.ndarray, float]:
        """(advice, weight) for a sample taken in ``situation``; ``expert`` is the environment's
        ``advice_attr`` there (None without one)."""
        return uniform(len(situation.actions)), 0.0

    def feedback(self, situation: Situation) -> str | None:
        """The sentence the student sends the teacher about ``situation``, if any."""
        return None

    def prepare(self, probes: list[Probe], should_stop: Callable[[], bool]) -> None:
        """Before the first rollout: get ready to advise in the probes' situations; give up
        early once ``should_stop()`` says so."""

    def learn(self, keys: np.ndarray, actions: np.ndarray, advantages: np.ndarray) -> None:
        """After a rollout: each sample's situation key, the student's action, its advantage."""

    def metrics(self) -> dict[str, Any]:
        """Figures for this rollout's METRICS event."""
        return {}

    def accuracy(self, probes: list[Probe], *, wait: bool, with_feedback: bool = True) -> tuple[ProbeAccuracy, ProbeAccuracy]:
        """The teacher's agreement with the BabyAI bot on the probe states, and on those the
        student has given no feedback for. With ``wait``, on every probe (the LLM answers what
        it has not answered yet); without, on those answered so far."""
        none = ProbeAccuracy(None, 0, 0)
        return none, none

    def final_accuracy(self, probes: list[Probe]) -> dict[str, float | None]:
        """After training: the teacher's accuracy zero-shot (``start``), with the student's
        feedback (``end``) and on the probes without feedback (``end_unjudged``), waiting for
        the LLM. {} without an LLM teacher."""
        if self.teacher is None:
            return {}
        self.teacher.drop_queued()
        start, _ = self.accuracy(probes, wait=True, with_feedback=False)
        end, end_unjudged = self.accuracy(probes, wait=True)
        return {"start": start.share, "end": end.share, "end_unjudged": end_unjudged.share}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class EnvironmentAdvice(Guidance):
    """Advice the environment computes (its ``advice_attr``): that action held at 0.95,
    weight 1; nothing where it has none."""

    @property
    def active(self) -> bool:
        return True

    def advise(self, situation: Situation, expert: int | None) -> tuple[np.ndarray, float]:
        n = len(situation.actions)
        return (uniform(n), 0.0) if expert is None else (held(expert, n), 1.0)


class OracleGuidance(EnvironmentAdvice):
    """minigrid's BabyAI bot as the teacher: the upper bound of what guidance can pass on."""

    source = "oracle"
    needs_expert = True
    advice_attr = "expert_action"


class LLMGuidance(Guidance):
    """An LLM teacher's answers, sharpened to ``p ** (1 / temperature)``: its raw next-token
    distributions are flat (the top action near 0.5 on GoToRedBallNoDists) although their
    ranking is informative, and a student that copied them stayed near random.

    With a ``memory`` (bidirectional), the student's verdicts flow back: each situation's verdict
    is a sentence in the teacher's prompt for it, so the teacher answers it again; and the
    verdicts decide the weights. Where the teacher's answer agrees with the verdict, the advice
    is that action held at 0.95, weight 1; where it disagrees, it is not followed (weight 0)
    until it has answered the feedback; where the student has no verdict, the weight is the
    teacher's measured reliability above chance (``trust``)."""

    source = "llm"

    def __init__(self, teacher: LLMTeacher, *, temperature: float, memory: FeedbackMemory | None = None):
        self.teacher = teacher
        self.temperature = temperature
        self.memory = memory
        self.reliability = 0.5
        """How often the teacher's feedback-free answers agree with the student's verdicts
        (``RELIABILITY_PRIOR`` pseudo-counts each way); 0.5 until there are verdicts."""

    @property
    def active(self) -> bool:
        return True

    def feedback(self, situation: Situation) -> str | None:
        return self.memory.sentence(situation.key) if self.memory else None

    def advise(self, situation: Situation, expert: int | None) -> tuple[np.ndarray, float]:
        n = len(situation.actions)
        answer = self.teacher.current(situation, self.feedback(situation))  # type: ignore[union-attr]
        if answer is None:
            return uniform(n), 0.0
        advice = sharpen(answer, self.temperature)
        if self.memory is None:
            return advice, 1.0
        verdict = self.memory.verdict(situation.key)
        if verdict is None:
            return advice, self.trust
        if int(np.argmax(answer)) == verdict:
            return held(verdict, n), 1.0
        return advice, 0.0

    @property
    def trust(self) -> float:
        """The reliability above chance, scaled to [0, 1]: the weight of advice the student
        cannot check yet."""
        chance = 1 / len(self.teacher.actions)  # type: ignore[union-attr]
        return max(0.0, (self.reliability - chance) / (1 - chance))

    def prepare(self, probes: list[Probe], should_stop: Callable[[], bool]) -> None:
        """The teacher answers the probes' situations (the level's common ones) before the
        student starts, on the idle cores: guidance then starts with the first rollout instead of
        arriving a few answers a rollout."""
        self.teacher.prepare(  # type: ignore[union-attr]
            [p.situation for p in probes], threads=idle_cores(), should_stop=should_stop
        )

    def learn(self, keys: np.ndarray, actions: np.ndarray, advantages: np.ndarray) -> None:
        if self.memory is None:
            return
        self.memory.update(keys, actions, advantages)
        agree = total = 0
        for key, verdict in self.memory.verdicts().items():
            answer = self.teacher.cached(key, None)  # type: ignore[union-attr]
            if answer is not None:
                total += 1
                agree += int(np.argmax(answer) == verdict)
        self.reliability = (agree + RELIABILITY_PRIOR) / (total + 2 * RELIABILITY_PRIOR)

    def accuracy(self, probes: list[Probe], *, wait: bool, with_feedback: bool = True) -> tuple[ProbeAccuracy, ProbeAccuracy]:
        """As ``Guidance.accuracy``: the teacher's most likely action against the bot's, the
        unjudged probes those whose situation has no verdict. Without ``wait``, each probe by the
        teacher's latest answer for its situation (under earlier feedback until the current
        feedback's answer arrives); the LLM answers the rest when training leaves it idle."""
        ask = self.teacher.ask if wait else self.teacher.latest  # type: ignore[union-attr]

        def answer(s: Situation) -> np.ndarray | None:
            return ask(s, self.feedback(s) if with_feedback else None)

        unjudged = [p for p in probes if self.memory is None or self.memory.verdict(p.situation.key) is None]
        return probe_accuracy(answer, probes), probe_accuracy(answer, unjudged)

    def metrics(self) -> dict[str, Any]:
        if self.memory is None:
            return {}
        return {"feedback_situations": self.memory.situations_with_verdict, "teacher_reliability": self.reliability}

    def state_dict(self) -> dict[str, Any]:
        return {
            "reliability": self.reliability,
            "memory": self.memory.state_dict() if self.memory else {},
            "teacher": self.teacher.state_dict() if self.teacher else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reliability = state.get("reliability", 0.5)
        if self.memory is not None:
            self.memory.load_state_dict(state.get("memory") or {})
        if self.teacher is not None and state.get("teacher"):
            self.teacher.load_state_dict(state["teacher"])

    def close(self) -> None:
        if self.teacher is not None:
            self.teacher.close()


def guidance_for(config: RunConfig, actions: tuple[str, ...]) -> Guidance:
    """The guidance of ``config``'s mode and kind. Loads the LLM teacher for the modes that use
    one (a model that cannot be loaded raises TeacherError here, before any training)."""
    if config.guidance_kind == GuidanceKind.SUBGOALS and config.mode.guides_student:
        from workers.subgoal_guidance import subgoal_guidance_for

        return subgoal_guidance_for(config)
    if config.mode == Mode.ORACLE:
        return OracleGuidance()
    if not config.mode.uses_llm:
        return Guidance()
    teacher = LLMTeacher(config.teacher_model, actions, timeout_s=config.teacher_timeout_s)
    memory = None
    if config.mode == Mode.BIDIRECTIONAL:
        memory = FeedbackMemory(actions, min_visits=config.feedback_min_visits, confidence=config.feedback_confidence)
    return LLMGuidance(teacher, temperature=config.teacher_temperature, memory=memory)
