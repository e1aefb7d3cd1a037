"""The student's feedback memory: verdicts from within-rollout comparisons, their confidence,
stickiness, the sentence, checkpoints."""

import numpy as np

from workers.feedback import FeedbackMemory

NAV = ("left", "right", "forward")
RNG = np.random.default_rng(0)


def rollout(key: str, means: dict[int, float], tries: int, noise: float = 0.1):
    """``tries`` samples of each action in ``means`` in situation ``key``, advantages around the means."""
    actions = np.repeat(list(means), tries)
    advantages = np.array([means[a] for a in actions]) + RNG.normal(0, noise, len(actions))
    return [key] * len(actions), actions, advantages


def test_no_verdict_until_two_actions_are_tried_enough():
    memory = FeedbackMemory(NAV, min_visits=3)
    assert memory.update(*rollout("s", {2: 1.0}, 5)) == set()
    assert memory.update(*rollout("s", {2: 1.0, 0: 0.0}, 2)) == set(), "left tried twice, below min_visits"
    assert memory.verdict("s") is None and memory.sentence("s") is None


def test_verdict_is_the_action_that_beats_the_others_with_confidence():
    memory = FeedbackMemory(NAV, min_visits=3, confidence=2.0)
    assert memory.update(*rollout("s", {0: -0.2, 2: 0.3}, 10)) == {"s"}
    assert memory.verdict("s") == 2
    assert memory.sentence("s") == "Feedback from the student: in this situation, forward worked best."
    spread = np.array([0.2, -0.2, 0.1, -0.1, 0.0])
    memory.update(["t"] * 10, np.array([0] * 5 + [1] * 5), np.concatenate([spread, spread + 0.01]))
    assert memory.verdict("t") is None, "a difference well inside the spread is no verdict"
    assert memory.situations_with_verdict == 1 and memory.verdicts() == {"s": 2}


def test_advantages_are_compared_within_a_rollout_not_across_rollouts():
    """Early advantages are all large (the value function starts near zero): the action the
    student abandoned keeps them. Compared within each rollout, the action it now takes wins."""
    memory = FeedbackMemory(NAV, min_visits=5)
    for offset in (1.0, 0.6, 0.3, 0.0):  # the value function catches up, rollout by rollout
        keys, actions, advantages = rollout("s", {0: offset, 2: offset + 0.2}, 3 if offset > 0.5 else 0, noise=0.05)
        more = rollout("s", {0: offset, 2: offset + 0.2}, 12, noise=0.05)
        memory.update(keys + more[0], np.concatenate([actions, more[1]]), np.concatenate([advantages, more[2]]))
    assert memory.verdict("s") == 2
    # A plain mean over everything would rank left first: it was tried mostly in early rollouts.
    early_left = FeedbackMemory(NAV, min_visits=5)
    early_left.update(*rollout("s", {0: 1.0}, 20, noise=0.05))
    early_left.update(*rollout("s", {2: 0.2}, 20, noise=0.05))
    assert early_left.verdict("s") is None, "never tried in the same rollout: nothing to compare"


def test_a_third_action_must_be_beaten_too_once_it_counts():
    memory = FeedbackMemory(NAV, min_visits=5)
    memory.update(*rollout("s", {0: 0.0, 1: 0.5, 2: 0.5}, 10, noise=0.05))
    assert memory.verdict("s") is None, "right and forward tie"
    memory.update(*rollout("s", {1: 0.3, 2: 0.6}, 30, noise=0.05))
    assert memory.verdict("s") == 2


def test_verdict_is_sticky_and_survives_a_round_trip():
    memory = FeedbackMemory(NAV, min_visits=3)
    memory.update(*rollout("s", {0: 0.5, 1: 0.0}, 10, noise=0.05))
    assert memory.verdict("s") == 0
    assert memory.update(*rollout("s", {0: 0.5, 1: 0.5}, 3, noise=0.05)) == set(), "no flip without confidence"
    assert memory.verdict("s") == 0
    assert memory.update(*rollout("s", {0: 0.0, 1: 1.0}, 60, noise=0.05)) == {"s"}
    assert memory.verdict("s") == 1
    copy = FeedbackMemory(NAV, min_visits=3)
    copy.load_state_dict(memory.state_dict())
    assert copy.verdict("s") == 1 and copy.state_dict() == memory.state_dict()


def test_a_checkpoint_from_before_the_pooled_comparisons_keeps_its_verdicts():
    memory = FeedbackMemory(NAV, min_visits=2)
    memory.load_state_dict({"s": {"count": [3, 0, 3], "mean": [0.1, 0.0, 0.4], "recent": [0, 2], "verdict": 2}})
    assert memory.verdict("s") == 2 and memory.state_dict()["s"]["count"] == [0, 0, 0]
    memory.update(*rollout("s", {0: 1.0, 2: 0.0}, 10, noise=0.05))
    assert memory.verdict("s") == 0
