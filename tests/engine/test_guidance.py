"""The guidance objects alone: advice and weights, what the student's feedback changes, state
round trips. The LLM teacher is replaced by a stand-in with fixed answers."""

import numpy as np
import pytest

from workers.config import Mode, RunConfig
from workers.evaluation import Probe, ProbeAccuracy
from workers.feedback import FeedbackMemory
from workers.guidance import CONFIDENT, Guidance, LLMGuidance, OracleGuidance, guidance_for, held, sharpen
from workers.situation import Situation

NAV = ("left", "right", "forward")
S = Situation(key="s", text="The red ball is 1 step to your right, level with you.", actions=NAV)
T = Situation(key="t", text="You do not see the red ball.", actions=NAV)


class FixedTeacher:
    """Answers each situation key from a table; feedback makes it answer the verdict."""

    actions = NAV

    def __init__(self, answers: dict[str, list[float]]):
        self.answers = {k: np.array(v) for k, v in answers.items()}
        self.closed = False

    def current(self, situation, feedback):
        if feedback:  # follows the student, as Qwen does with the right feedback
            verdict = next(i for i, a in enumerate(NAV) if f" {a} worked best" in feedback)
            return held(verdict, 3, 0.6)
        return self.answers.get(situation.key)

    latest = ask = current

    def cached(self, key, feedback):
        return self.answers.get(key)

    def state_dict(self):
        return {"answers": {k: v.tolist() for k, v in self.answers.items()}}

    def load_state_dict(self, state):
        self.answers = {k: np.array(v) for k, v in state["answers"].items()}

    def close(self):
        self.closed = True


def verdict_for(memory: FeedbackMemory, key: str, best: int, other: int) -> None:
    actions = np.array([best] * 10 + [other] * 10)
    memory.update([key] * 20, actions, np.where(actions == best, 0.5, 0.0) + np.tile([0.01, -0.01], 10))


def test_no_guidance_advises_nothing():
    guidance = Guidance()
    probs, weight = guidance.advise(S, None)
    assert not guidance.active and weight == 0.0 and np.allclose(probs, 1 / 3)


def test_the_oracle_holds_the_bots_action_and_is_silent_where_the_bot_is():
    guidance = OracleGuidance()
    probs, weight = guidance.advise(S, 1)
    assert guidance.active and guidance.needs_expert and weight == 1.0
    assert probs[1] == pytest.approx(CONFIDENT) and probs.sum() == pytest.approx(1.0)
    assert guidance.advise(S, None)[1] == 0.0


def test_sharpen_keeps_the_ranking_and_sharpens_confident_answers_more():
    flat, confident = np.array([0.3, 0.33, 0.37]), np.array([0.13, 0.25, 0.62])
    assert np.argmax(sharpen(flat, 0.2)) == 2 and sharpen(confident, 0.2)[2] > sharpen(flat, 0.2)[2] > 0.37
    assert np.allclose(sharpen(confident, 1.0), confident)


def test_unidirectional_follows_every_answer_sharpened():
    guidance = LLMGuidance(FixedTeacher({"s": [0.1, 0.4, 0.5]}), temperature=0.2)
    probs, weight = guidance.advise(S, None)
    assert weight == 1.0 and np.allclose(probs, sharpen(np.array([0.1, 0.4, 0.5]), 0.2))
    assert guidance.advise(T, None)[1] == 0.0, "no answer yet: no guidance"
    assert guidance.feedback(S) is None and guidance.metrics() == {}


def test_bidirectional_weights_follow_the_students_verdicts():
    memory = FeedbackMemory(NAV, min_visits=5)
    teacher = FixedTeacher({"s": [0.1, 0.4, 0.5], "t": [0.2, 0.3, 0.5]})
    guidance = LLMGuidance(teacher, temperature=0.2, memory=memory)
    assert guidance.advise(S, None)[1] == pytest.approx(guidance.trust) == pytest.approx(0.25), "no verdicts: the prior"
    verdict_for(memory, "s", best=1, other=2)
    guidance.learn(np.array([]), np.array([], int), np.array([]))
    assert guidance.feedback(S) == "Feedback from the student: in this situation, right worked best."
    probs, weight = guidance.advise(S, None)
    assert weight == 1.0 and probs[1] == pytest.approx(CONFIDENT), "the teacher answered the feedback: confirmed"
    # The zero-shot answer (forward) disagreed with the verdict: the teacher is a bit less trusted.
    assert guidance.reliability < 0.5 and guidance.advise(T, None)[1] == pytest.approx(guidance.trust)
    assert guidance.metrics() == {"feedback_situations": 1, "teacher_reliability": guidance.reliability}


def test_an_answer_that_ignores_the_verdict_is_not_followed():
    memory = FeedbackMemory(NAV, min_visits=5)
    teacher = FixedTeacher({"s": [0.1, 0.4, 0.5]})
    teacher.current = lambda situation, feedback: teacher.answers[situation.key]  # deaf to feedback
    guidance = LLMGuidance(teacher, temperature=0.2, memory=memory)
    verdict_for(memory, "s", best=1, other=2)
    assert guidance.advise(S, None)[1] == 0.0


def test_a_teacher_no_better_than_chance_is_not_trusted():
    memory = FeedbackMemory(NAV, min_visits=5)
    answers = {k: [0.6, 0.2, 0.2] for k in "abcdefghij"}  # always "left"
    guidance = LLMGuidance(FixedTeacher(answers), temperature=0.2, memory=memory)
    for key in answers:
        verdict_for(memory, key, best=2, other=0)
    guidance.learn(np.array([]), np.array([], int), np.array([]))
    assert guidance.trust == 0.0


def test_accuracy_without_waiting_is_on_the_answered_probes_and_says_how_many():
    memory = FeedbackMemory(NAV, min_visits=5)
    guidance = LLMGuidance(FixedTeacher({"s": [0.1, 0.4, 0.5]}), temperature=0.2, memory=memory)
    probes = [Probe(S, 2), Probe(S, 2), Probe(T, 0)]  # nothing answers T yet
    overall, unjudged = guidance.accuracy(probes, wait=False)
    assert overall == ProbeAccuracy(share=1.0, answered=2, probes=3) and unjudged == overall
    verdict_for(memory, "s", best=1, other=2)  # the verdict says "right", the bot "forward": the teacher follows it
    overall, unjudged = guidance.accuracy(probes, wait=False)
    assert overall == ProbeAccuracy(share=0.0, answered=2, probes=3), "with the student's feedback"
    assert unjudged == ProbeAccuracy(share=None, answered=0, probes=1), "only T has no verdict, unanswered"
    assert guidance.accuracy([], wait=False)[0] == ProbeAccuracy(share=None, answered=0, probes=0)


def test_state_round_trip_and_checkpoints_from_before_the_guidance_objects():
    memory = FeedbackMemory(NAV, min_visits=5)
    guidance = LLMGuidance(FixedTeacher({"s": [0.1, 0.4, 0.5]}), temperature=0.2, memory=memory)
    verdict_for(memory, "s", best=1, other=2)
    guidance.learn(np.array([]), np.array([], int), np.array([]))
    copy = LLMGuidance(FixedTeacher({}), temperature=0.2, memory=FeedbackMemory(NAV, min_visits=5))
    copy.load_state_dict(guidance.state_dict())
    assert copy.state_dict() == guidance.state_dict() and copy.memory.verdict("s") == 1
    # An old checkpoint kept reliability, memory and teacher at the top of its state.
    old = LLMGuidance(FixedTeacher({}), temperature=0.2, memory=FeedbackMemory(NAV))
    old.load_state_dict({"timesteps": 1024, "reliability": 0.7, "memory": {}, "teacher": {"answers": {"s": [1, 0, 0]}}})
    assert old.reliability == 0.7 and old.teacher.answers["s"].tolist() == [1, 0, 0]
    guidance.close()
    assert guidance.teacher.closed


@pytest.mark.parametrize("mode, kind", [(Mode.PPO, Guidance), (Mode.ORACLE, OracleGuidance)])
def test_guidance_for_each_mode_without_a_teacher(mode, kind):
    assert type(guidance_for(RunConfig(mode=mode), NAV)) is kind
