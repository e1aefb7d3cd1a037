"""Evaluating a policy greedy and sampled, on the same held-out episodes."""

import numpy as np

from workers.evaluation import evaluate_policy
from workers.levels import make_env

LEVEL = "BabyAI-GoToRedBallNoDists-v0"
NAV = make_env(LEVEL).action_names


def test_greedy_and_sampled_are_evaluated_on_the_same_episodes_and_reproducibly():
    # Mostly "left": greedy it turns on the spot forever and never succeeds; sampled, the
    # fifth of its steps that go forward or right reach the ball some of the time.
    mostly_left = np.array([0.6, 0.2, 0.2])
    assert NAV[int(np.argmax(mostly_left))] == "left"
    result = evaluate_policy(lambda _obs, _env: mostly_left, LEVEL, episodes=20, seed=0)
    assert result["mean_return"] == 0.0 and result["success_rate"] == 0.0 and result["episodes"] == 20
    assert result["sampled_success_rate"] > 0.0 and 0.0 < result["sampled_mean_return"] < 1.0
    assert result["mean_length"] > result["sampled_mean_length"], "a greedy spinner runs out of time"
    assert evaluate_policy(lambda _obs, _env: mostly_left, LEVEL, episodes=20, seed=0) == result
    assert evaluate_policy(lambda _obs, _env: mostly_left, LEVEL, episodes=20, seed=1) != result


def test_a_policy_sure_of_its_actions_scores_the_same_both_ways():
    def bot_like(_obs, env):
        situation = env.situation.key.rsplit(":", 1)[1]
        action = "forward" if situation[0] not in "0n" else ("left" if situation[1:2] == "l" else "right")
        return np.eye(3)[NAV.index(action)]

    result = evaluate_policy(bot_like, LEVEL, episodes=10, seed=0)
    assert result["mean_return"] == result["sampled_mean_return"]
    assert result["success_rate"] == result["sampled_success_rate"]
