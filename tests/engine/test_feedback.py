"""The student's feedback memory: verdicts from advantages, stickiness, the sentence."""

import numpy as np

from workers.feedback import FeedbackMemory

NAV = ("left", "right", "forward")


def test_no_verdict_until_two_actions_are_tried_enough():
    memory = FeedbackMemory(NAV, min_visits=3, margin=0.05)
    changed = memory.update(["s"] * 5, np.array([2] * 5), np.array([1.0] * 5))
    assert changed == set() and memory.verdict("s") is None and memory.sentence("s") is None


def test_verdict_is_the_action_with_the_best_mean_advantage():
    memory = FeedbackMemory(NAV, min_visits=3, margin=0.05)
    keys = ["s"] * 6 + ["t"] * 6
    actions = np.array([0, 0, 0, 2, 2, 2] + [0, 0, 0, 1, 1, 1])
    advantages = np.array([-0.2, -0.1, -0.3, 0.4, 0.5, 0.3] + [0.1, 0.1, 0.1, 0.12, 0.1, 0.1])
    assert memory.update(keys, actions, advantages) == {"s"}
    assert memory.verdict("s") == 2
    assert memory.sentence("s") == "Feedback from the student: in this situation, forward worked best."
    assert memory.verdict("t") is None, "a margin below 0.05 is no verdict"
    assert memory.situations_with_verdict == 1


def test_verdict_changes_only_when_the_ranking_flips_and_survives_a_round_trip():
    memory = FeedbackMemory(NAV, min_visits=2, margin=0.0)
    memory.update(["s"] * 4, np.array([0, 0, 1, 1]), np.array([1.0, 1.0, 0.0, 0.0]))
    assert memory.verdict("s") == 0
    assert memory.update(["s"] * 2, np.array([0, 1]), np.array([0.9, 0.1])) == set()
    assert memory.update(["s"] * 8, np.array([1] * 8), np.array([5.0] * 8)) == {"s"}
    assert memory.verdict("s") == 1
    copy = FeedbackMemory(NAV, min_visits=2, margin=0.0)
    copy.load_state_dict(memory.state_dict())
    assert copy.verdict("s") == 1 and copy.state_dict() == memory.state_dict()


def test_once_the_student_has_decided_its_verdict_is_what_it_does_whatever_the_advantages_say():
    memory = FeedbackMemory(NAV, min_visits=2, margin=0.0, behaviour_window=40, decided_share=0.8, decided_min_tries=20)
    # 19 tries, 17 of them forward, and the advantages favour left: too few tries to count as decided.
    actions = np.array([0, 0] + [2] * 17)
    advantages = np.array([0.5, 0.5] + [0.0] * 17)
    memory.update(["s"] * 19, actions, advantages)
    assert memory.verdict("s") == 0
    # The 20th try: forward is 18/20 = 0.9 of the window.
    assert memory.update(["s"], np.array([2]), np.array([-0.1])) == {"s"}
    assert memory.verdict("s") == 2
    # Only the window's latest 40 tries count: 20 tries of right, then left and right in turn,
    # leave no action at 0.8 of the window, so the advantages (which favour left) judge again.
    memory.update(["s"] * 20, np.array([1] * 20), np.array([0.0] * 20))
    assert memory.verdict("s") == 0, "right is 20/40 of the window: undecided, and left has the best mean advantage"


def test_a_checkpoint_from_before_the_behaviour_window_loads_with_an_empty_window():
    memory = FeedbackMemory(NAV, min_visits=2, margin=0.0, decided_min_tries=4)
    memory.load_state_dict({"s": {"count": [3, 0, 3], "mean": [0.1, 0.0, 0.4], "verdict": 2}})
    assert memory.verdict("s") == 2 and memory.state_dict()["s"]["recent"] == []
    memory.update(["s"] * 4, np.array([0] * 4), np.array([0.0] * 4))
    assert memory.verdict("s") == 0, "four tries of left fill the new window: decided"
    assert memory.state_dict()["s"]["recent"] == [0, 0, 0, 0]
