"""The LLM asked for plans, with the real default model: constrained scoring of the candidate
subgoals, the feedback in its prompt, and the planner's refusals."""

import numpy as np
import pytest

from workers.plan_teacher import PlanQuestion, PlanTeacher
from workers.shaping import PlanOutcome
from workers.subgoal_guidance import LLMPlanner, PlanMemory, collect_plan_probes
from workers.subgoals import PlanState, Subgoal, candidates
from workers.teachers import DEFAULT_TEACHER, available_models

DOORS = ("left", "right", "forward", "pickup", "toggle")
LOCKED = PlanState("open the door", None, (("door", "blue", 2), ("key", "blue", 0)), DOORS)
CARRYING = PlanState("open the door", ("key", "blue"), (("door", "blue", 2),), DOORS)


@pytest.fixture(scope="module")
def teacher():
    t = PlanTeacher(DEFAULT_TEACHER, timeout_s=60)
    yield t
    t.close()


def test_the_answer_is_a_distribution_over_the_candidates(teacher):
    question = PlanQuestion.of(LOCKED)
    probs = teacher.ask(question, None)
    assert probs.shape == (len(question.choices),) and np.isclose(probs.sum(), 1.0) and (probs > 0).all()
    other = PlanQuestion.of(CARRYING)
    assert question.choices != other.choices
    assert other.choices[int(np.argmax(teacher.ask(other, None)))] == Subgoal("open", "door", "blue"), \
        "carrying the key, the teacher opens the door (it does on this state with the default prompt)"


def test_scoring_reuses_the_prompt_and_gives_what_a_cold_pass_gives(teacher):
    question = PlanQuestion.of(LOCKED)
    warm = teacher._compute(question, None)
    teacher._llm.reset()
    cold = teacher._compute(question, None)
    assert np.allclose(warm, cold, atol=1e-3)


def test_feedback_is_in_the_prompt_and_re_asks(teacher):
    question = PlanQuestion.of(LOCKED)
    feedback = "Feedback from the student: these did not work here: open the blue door: reached in 0 of 9 tries."
    assert feedback in teacher.prompt(question, feedback) and "Possible subgoals: " in teacher.prompt(question, None)
    calls = teacher.stats.calls
    teacher.ask(question, None)
    teacher.ask(question, feedback)
    assert teacher.stats.calls == calls + 1 or teacher.cached(question.key, feedback) is not None


def test_an_answer_is_only_read_against_the_choices_it_scored():
    everything = PlanQuestion.of(LOCKED)
    fewer = PlanQuestion.of(LOCKED, frozenset({Subgoal("open", "door", "blue")}))
    assert len(fewer.choices) == len(everything.choices) - 1
    assert fewer.key != everything.key, "the teacher's latest answer for one must not be read for the other"
    assert LLMPlanner.choose(fewer, None) is None


@pytest.mark.slow
def test_the_planner_only_ever_names_a_candidate(teacher):
    planner = LLMPlanner(teacher)
    probes = collect_plan_probes("BabyAI-UnlockLocal-v0", 20, seed=1)
    for probe in probes:
        question = PlanQuestion.of(probe.state)
        teacher.ask(question, None)
        assert planner.plan(probe.state) in candidates(probe.state)
    assert planner.plan(PlanState("open the door", None, (("door", "blue", 0),), ("left", "right", "forward"))) is None, \
        "no candidate (the door is open and the level has no toggle): no plan"


def test_a_failed_subgoal_is_named_in_the_prompt_and_out_of_the_choices(teacher):
    memory = PlanMemory(min_tries=2)
    planner = LLMPlanner(teacher, memory)
    question = PlanQuestion.of(LOCKED)
    chosen = question.choices[int(np.argmax(teacher.ask(question, None)))]
    memory.record([PlanOutcome(LOCKED, chosen, 0, attempts=1) for _ in range(3)])  # its action tried 3 times, never reached
    revised, feedback = planner.question(LOCKED)
    assert chosen.text in feedback and chosen not in revised.choices and len(revised.choices) == len(question.choices) - 1
    teacher.ask(revised, feedback)
    assert planner.plan(LOCKED) in revised.choices
    for subgoal in revised.choices:  # every candidate fails: a plan loop, and no plan
        memory.record([PlanOutcome(LOCKED, subgoal, 0, attempts=1) for _ in range(3)])
    assert planner.plan(LOCKED) is None and planner.looped == {LOCKED.key}


@pytest.mark.parametrize("model", available_models())
def test_the_plan_prompt_renders_for_every_installed_model(model):
    t = PlanTeacher(model, timeout_s=60)
    try:
        prompt = t.prompt(PlanQuestion.of(LOCKED), None)
        assert prompt.rstrip().endswith("Next subgoal:") and "Mission: open the door." in prompt
    finally:
        t.close()
