"""Subgoals on hand-built grids, the shaping's potential, the student's record of plans, and the
bot's subgoals (no LLM here; tests/engine/test_plan_teacher.py has the LLM's)."""

import gymnasium as gym
import numpy as np
import pytest
from minigrid.core.grid import Grid
from minigrid.core.world_object import Ball, Door, Key
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from workers.levels import make_env
from workers.shaping import PlannedEnv, PlanOutcome, ShapedRewards
from workers.subgoal_guidance import BotPlanner, PlanMemory, collect_plan_probes
from workers.subgoals import PlanState, Renaming, Route, Subgoal, achieved, bot_subgoal, candidates

NAV = ("left", "right", "forward")
DOORS = ("left", "right", "forward", "pickup", "toggle")


def room(width=7, height=7):
    """A walled room in a real minigrid env, the agent at (1, 1) facing east (+x)."""
    env = gym.make("BabyAI-GoToRedBallNoDists-v0").unwrapped
    env.reset(seed=0)
    env.grid = Grid(width, height)
    env.grid.wall_rect(0, 0, width, height)
    env.agent_pos, env.agent_dir, env.carrying = np.array([1, 1]), 0, None
    return env


def test_go_to_is_facing_the_object():
    env = room()
    env.grid.set(2, 1, Ball("red"))
    assert achieved(env, Subgoal("goto", "ball", "red")) and achieved(env, Subgoal("goto", "ball"))
    assert not achieved(env, Subgoal("goto", "ball", "blue"))
    env.agent_dir = 1  # facing south: next to the ball, not facing it
    assert not achieved(env, Subgoal("goto", "ball", "red"))


def test_pick_up_open_and_put_next_to():
    env = room()
    key = Key("yellow")
    env.carrying = key
    assert achieved(env, Subgoal("pickup", "key", "yellow")) and not achieved(env, Subgoal("pickup", "key", "grey"))
    door = Door("yellow", is_locked=True)
    env.grid.set(3, 3, door)
    assert not achieved(env, Subgoal("open", "door", "yellow"))
    door.is_locked, door.is_open = False, True
    assert achieved(env, Subgoal("open", "door", "yellow"))
    ball, other = Ball("red"), Key("grey")
    env.grid.set(4, 4, ball)
    ball.cur_pos = (4, 4)
    env.grid.set(4, 5, other)
    env.carrying = None
    assert achieved(env, Subgoal("putnext", "key", "grey"), dropped=ball)
    assert not achieved(env, Subgoal("putnext", "key", "yellow"), dropped=ball)
    env.carrying = other
    assert not achieved(env, Subgoal("putnext", "key", "grey"), dropped=ball), "still carrying something"


def path_length(env, subgoal):
    return Route(env, subgoal).steps(env)


def test_the_way_goes_around_walls_and_through_unlocked_doors_only():
    env = room(9, 5)
    env.grid.set(6, 2, Ball("red"))
    assert path_length(env, Subgoal("goto", "ball", "red")) == 5  # (1,1) -> (5,2): 4 east, 1 south
    for y in (1, 2, 3):
        env.grid.set(3, y, Key("grey") if y != 2 else Door("blue", is_locked=True))
    assert path_length(env, Subgoal("goto", "ball", "red")) is None, "a locked door and objects block the way"
    env.grid.set(3, 2, Door("blue", is_locked=False))
    assert path_length(env, Subgoal("goto", "ball", "red")) == 5
    assert path_length(env, Subgoal("goto", "ball", "green")) is None
    assert Route(env, Subgoal("goto", "ball", "red")).closeness(env) == pytest.approx(1 - 5 / 14)


def test_candidates_are_the_mission_and_seen_objects_less_what_is_done():
    seen = (("door", "yellow", 2), ("key", "grey", 0), ("key", "yellow", 0))
    state = PlanState("open the yellow door", None, seen, DOORS)
    choices = candidates(state)
    assert Subgoal("pickup", "key", "yellow") in choices and Subgoal("open", "door", "yellow") in choices
    assert {c.type for c in choices} <= {"door", "key"}
    assert not any(c.verb == "putnext" for c in choices), "nothing is carried, and the level has no drop"
    carrying = PlanState("open the yellow door", ("key", "yellow"), (("door", "yellow", 2), ("key", "grey", 0)), DOORS)
    assert Subgoal("pickup", "key", "grey") not in candidates(carrying), "one object at a time"
    assert Subgoal("goto", "key", "yellow") not in candidates(carrying)
    opened = PlanState("open the yellow door", None, (("door", "yellow", 0),), DOORS)
    assert Subgoal("open", "door", "yellow") not in candidates(opened)
    unseen = PlanState("go to the red ball", None, (), NAV)
    assert candidates(unseen) == (Subgoal("goto", "ball", "red"),), "the mission's object, before it is seen"
    assert candidates(state) == candidates(state) and state.key != carrying.key


class Fixed:
    """A planner that always says the same subgoal, and keeps what it is told."""

    def __init__(self, subgoal):
        self.subgoal, self.episodes = subgoal, []

    def plan(self, state, env):
        return self.subgoal

    def record(self, outcomes):
        self.episodes.append(outcomes)


@pytest.mark.parametrize("gamma", [0.99, 0.9])
def test_shaping_sums_to_minus_the_first_potential_whatever_the_student_does(gamma):
    rng = np.random.default_rng(0)
    for episode in range(5):
        env = PlannedEnv(make_env("BabyAI-UnlockLocal-v0", max_steps=60), Fixed(Subgoal("pickup", "key")), gamma=gamma, scale=1.0)
        env.reset(seed=episode)
        first, total, t, done = env._episode.potential, 0.0, 0, False
        while not done:
            _, _, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
            total += gamma ** t * info["shaping"]
            t += 1
            done = terminated or truncated
        assert total == pytest.approx(-first, abs=1e-9)


def test_shaping_along_a_loop_is_zero_undiscounted_and_rewards_getting_closer():
    env = PlannedEnv(make_env("BabyAI-GoToRedBallNoDists-v0"), Fixed(Subgoal("goto", "ball", "red")), gamma=1.0, scale=1.0)
    env.reset(seed=3)
    left = env.env.action_names.index("left")
    loop = [env.step(left)[4]["shaping"] for _ in range(4)]  # a full turn on the spot: back where it was
    assert sum(loop) == pytest.approx(0.0, abs=1e-12)
    base = env.unwrapped
    before = path_length(base, Subgoal("goto", "ball", "red"))
    for _ in range(4):  # turn until a step forward gets closer, then take it
        front = tuple(base.front_pos)
        ball = next(pos for obj, pos in ((base.grid.get(x, y), (x, y)) for x in range(base.width)
                                          for y in range(base.height)) if obj is not None and obj.type == "ball")
        if abs(front[0] - ball[0]) + abs(front[1] - ball[1]) < abs(base.agent_pos[0] - ball[0]) + abs(base.agent_pos[1] - ball[1]) \
                and base.grid.get(*front) is None:
            break
        env.step(left)
    shaping = env.step(env.env.action_names.index("forward"))[4]["shaping"]
    if path_length(base, Subgoal("goto", "ball", "red")) < before:
        assert shaping > 0


def test_shaped_rewards_leave_the_recorded_episodes_on_the_levels_reward():
    planner = Fixed(Subgoal("goto", "ball", "red"))
    venv = make_vec_env(lambda: PlannedEnv(make_env("BabyAI-GoToRedBallNoDists-v0"), planner, gamma=0.99, scale=1.0),
                        n_envs=2, seed=0, vec_env_cls=DummyVecEnv)
    shaped = ShapedRewards(venv)
    shaped.reset()
    rng = np.random.default_rng(0)
    learned, level = np.zeros(2), []
    for _ in range(300):
        _, rewards, dones, infos = shaped.step(rng.integers(3, size=2))
        learned += rewards
        level += [info["episode"]["r"] for info in infos if "episode" in info]
    assert level and all(0 <= r <= 1 for r in level)
    assert not np.allclose(learned, 0), "the student learns from the shaped reward"
    assert planner.episodes, "each episode's outcomes reach the planner"


def test_each_subgoal_earns_its_bonus_once_an_episode():
    grey = Subgoal("goto", "ball", "grey")
    env = PlannedEnv(make_env("BabyAI-GoToRedBallNoDists-v0"), Fixed(grey), gamma=1.0, scale=1.0)
    env.reset(seed=0)
    base = env.unwrapped
    base.grid.set(*base.front_pos, Ball("grey"))
    left, right = env.env.action_names.index("left"), env.env.action_names.index("right")
    bonuses = []
    for _ in range(3):  # turn away and back: facing the grey ball again each time
        env.step(left)
        bonuses.append(env.step(right)[4]["shaping"])
    assert env._episode.achieved == 1 and grey in env._episode.done and env.subgoal is None
    assert bonuses[0] >= 0.5 and bonuses[1:] == [0.0, 0.0]


YELLOW = PlanState("open the yellow door", None, (("door", "yellow", 2), ("key", "yellow", 0), ("ball", "grey", 0)), DOORS)
RED = PlanState("open the red door", None, (("door", "red", 2), ("key", "red", 0), ("ball", "grey", 0)), DOORS)
"""The same plan state in other colours."""


def outcome(subgoal, reached=None, rewarded=False, state=YELLOW, attempts=0):
    return PlanOutcome(state, subgoal, 0, reached, attempts, rewarded=rewarded)


def test_plan_memory_reports_what_is_rarely_reached_or_never_pays():
    door, key, ball = Subgoal("open", "door", "yellow"), Subgoal("pickup", "key", "yellow"), Subgoal("pickup", "ball", "grey")
    memory = PlanMemory(min_tries=4)
    memory.record([outcome(door) for _ in range(20)])
    assert memory.sentence(YELLOW) is None, "chosen and not reached is the student's doing, not the plan's"
    memory.record([outcome(door, attempts=2)])
    assert memory.sentence(YELLOW) is None, "too few tries to judge"
    memory.record([outcome(door, attempts=1)])
    assert "open the yellow door: tried 3 times, it did not work" in memory.sentence(YELLOW)
    memory.record([outcome(ball, reached=3) for _ in range(4)])
    assert "pick up the grey ball" not in memory.sentence(YELLOW), "no episode from here got the reward yet"
    memory.record([outcome(key, reached=5, rewarded=True) for _ in range(4)])
    sentence = memory.sentence(YELLOW)
    assert "pick up the grey ball: reached 4 times, and the mission never succeeded after it" in sentence
    memory.record([outcome(door, attempts=5)])
    assert memory.sentence(YELLOW) == sentence, "the sentence (and so the prompt) does not change with every try"
    assert "pick up the yellow key" not in sentence
    assert set(memory.failures(YELLOW)) == {door, ball} and memory.states_with_feedback == 1
    other = PlanState("open the yellow door", ("key", "yellow"), (("door", "yellow", 2),), DOORS)
    assert memory.sentence(other) is None, "another plan state"
    again = PlanMemory(min_tries=4)
    again.load_state_dict(memory.state_dict())
    assert again.sentence(YELLOW) == sentence


def test_plan_memory_pools_plan_states_that_differ_only_by_colours():
    memory = PlanMemory(min_tries=4)
    memory.record([outcome(Subgoal("open", "door", "yellow"), attempts=2)])
    memory.record([outcome(Subgoal("open", "door", "red"), state=RED, attempts=1)])
    assert memory.sentence(RED) == "Feedback from the student: these did not work here: open the red door: tried 3 times, it did not work."
    assert set(memory.failures(YELLOW)) == {Subgoal("open", "door", "yellow")}
    assert Renaming.of(YELLOW).key == Renaming.of(RED).key != YELLOW.key
    two = PlanState("open the red door", None, (("door", "red", 2), ("key", "red", 0), ("key", "blue", 0)), DOORS)
    assert Renaming.of(two).key != Renaming.of(RED).key, "a different structure is not pooled"


def test_a_subgoal_is_read_back_from_its_text():
    from minigrid.core.constants import COLOR_NAMES

    from workers.subgoals import OBJECT_TYPES, PHRASES

    every = [Subgoal(verb, obj, color) for verb in PHRASES for obj in OBJECT_TYPES for color in (None, *COLOR_NAMES)]
    assert all(Subgoal.from_text(s.text) == s for s in every)
    for text in ("open the", "open the purple-ish door", "fly to the red ball", "go to the red ball now"):
        with pytest.raises(ValueError, match="not a subgoal's text"):
            Subgoal.from_text(text)


def test_the_bots_subgoal_is_in_the_vocabulary_and_the_candidates():
    probes = collect_plan_probes("BabyAI-UnlockLocal-v0", 60, seed=0)
    assert len(probes) == 60
    verbs = {p.subgoal.verb for p in probes}
    assert {"pickup", "open"} <= verbs
    for probe in probes:
        assert any(probe.subgoal.same_as(c) for c in candidates(probe.state)), (probe.state.key, probe.subgoal)
    env = make_env("BabyAI-GoToRedBallNoDists-v0", expert=True)
    env.reset(seed=0)
    assert bot_subgoal(env.bot) == Subgoal("goto", "ball", "red")
    assert BotPlanner().plan(None, PlannedEnv(env, BotPlanner(), gamma=1, scale=0)) == Subgoal("goto", "ball", "red")


@pytest.mark.parametrize("env_id", ["BabyAI-GoToRedBallNoDists-v0", "BabyAI-UnlockLocal-v0", "BabyAI-PickupLoc-v0"])
def test_following_the_route_to_the_bots_subgoals_solves_the_level(env_id):
    env = PlannedEnv(make_env(env_id, expert=True), BotPlanner(), gamma=1.0, scale=0.0)
    solved = 0
    for seed in range(10):
        env.reset(seed=seed)
        for _ in range(200):
            action = env.subgoal_action
            action = env.env.expert_action if action is None else action  # exploring: no object named yet
            _, reward, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                solved += int(reward > 0)
                break
    assert solved >= 9
