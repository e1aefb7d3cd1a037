"""Subgoal guidance inside the environments: the current plan, its shaping reward, its outcomes.

:class:`PlannedEnv` wraps a teachable level. After every step it reads the state a plan depends
on (``PlanState``), asks its :class:`Planner` for the subgoal (an answer it already has: the
planner never blocks), notes when the subgoal is achieved, and puts the potential-based shaping
of that step in ``info["shaping"]`` (``workers.subgoals``). It does not touch the reward:
:class:`ShapedRewards` adds the shaping to what the student learns from *outside* the Monitor
that records episodes, so the training return, frames to the threshold and evaluation stay on
the level's own reward.

At the end of each episode the planner gets what happened to each subgoal it chose
(:class:`PlanOutcome`): the student's feedback on plans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from workers.subgoals import CLOSENESS_WEIGHT, FINAL_ACTIONS, PlanState, Route, Subgoal, achieved, seen_objects


@dataclass
class PlanOutcome:
    """One subgoal chosen in one plan state, in one episode."""

    state: PlanState
    subgoal: Subgoal
    chosen_at: int
    """Episode step at which it became the plan."""
    reached_at: int | None = None
    attempts: int = 0
    """Times the subgoal's own action (pickup, toggle, drop) was taken where the way to it ends
    without achieving it."""
    no_way: bool = False
    """Whether there was no way to it on the grid when it was chosen (or when the grid changed)."""
    rewarded: bool = False
    """Whether the episode then got the level's reward."""


class Planner(Protocol):
    def plan(self, state: PlanState, env: "PlannedEnv") -> Subgoal | None:
        """The subgoal for ``state`` if one is known now (never waits)."""

    def record(self, outcomes: list[PlanOutcome]) -> None:
        """An episode is over: what became of each subgoal chosen in it."""

    def feedback(self, state: PlanState) -> str | None:
        """The student's feedback the teacher reads for this plan state, if any."""


@dataclass
class _Episode:
    step: int = 0
    seen: set = field(default_factory=set)
    achieved: int = 0
    subgoal: Subgoal | None = None
    potential: float = 0.0
    dropped: Any = None
    route: Route | None = None
    done: set = field(default_factory=set)
    """Subgoals achieved this episode: each earns its bonus once."""
    outcomes: list[PlanOutcome] = field(default_factory=list)


class PlannedEnv(gym.Wrapper):
    """A teachable level whose steps carry the shaping toward its planner's current subgoal."""

    def __init__(self, env: gym.Env, planner: Planner, *, gamma: float, scale: float):
        super().__init__(env)
        self.planner = planner
        self.gamma = gamma
        self.scale = scale
        self._episode = _Episode()

    @property
    def subgoal(self) -> Subgoal | None:
        """The current plan (for the live view and the hints)."""
        return self._episode.subgoal

    @property
    def plan_view(self) -> dict[str, Any]:
        """The plan as the run page shows it: the plan state, the current subgoal, the subgoals
        reached this episode, and the feedback the teacher reads for this state."""
        state = self.plan_state
        episode = self._episode
        return {
            "state": state.text,
            "subgoal": episode.subgoal.text if episode.subgoal else None,
            "reached": [o.subgoal.text for o in episode.outcomes if o.reached_at is not None],
            "feedback": self.planner.feedback(state),
        }

    @property
    def subgoal_action(self) -> int | None:
        """Index (into the level's actions) of the action that starts a shortest way to the
        current subgoal: the advice of subgoal guidance. None without a subgoal or a way."""
        route = self._episode.route
        name = route.action(self.env.unwrapped) if route is not None else None
        names = self.env.action_names
        return names.index(name) if name in names else None

    @property
    def plan_state(self) -> PlanState:
        base = self.env.unwrapped
        carrying = (base.carrying.type, base.carrying.color) if base.carrying is not None else None
        # Doors by the most open state seen: one seen locked and later open counts as open.
        latest: dict[tuple[str, str], int] = {}
        for obj, color, state in self._episode.seen:
            latest[(obj, color)] = min(state, latest.get((obj, color), 3))
        seen = tuple(sorted((o, c, s) for (o, c), s in latest.items() if (o, c) != carrying))
        return PlanState(base.mission, carrying, seen, self.env.action_names)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._episode = _Episode()
        self._look(obs)
        self._replan()
        self._episode.potential = self._potential()
        return obs, info

    def step(self, action):
        base = self.env.unwrapped
        carried_before = base.carrying
        episode = self._episode
        name = self.env.action_names[int(action)]
        # The subgoal's own action (pickup, toggle, drop) taken where the way to it ends, facing
        # what it needs (not a toggle of a closed door on the way).
        attempt = episode.route is not None and episode.route.final_action_here(base) == name
        obs, reward, terminated, truncated, info = self.env.step(action)
        episode.step += 1
        if name in FINAL_ACTIONS:
            episode.route = None  # the grid may have changed: find the way again
        if carried_before is not None and base.carrying is None:
            episode.dropped = carried_before
        self._look(obs)
        if episode.subgoal is not None and achieved(base, episode.subgoal, episode.dropped):
            episode.achieved += 1
            episode.done.add(episode.subgoal)
            episode.outcomes[-1].reached_at = episode.step
            episode.subgoal = episode.route = None
        elif attempt:
            episode.outcomes[-1].attempts += 1  # a locked door stays shut, say
        # phi is 0 at the end, truncated or not: the shaping then sums to -phi(s_0) over every
        # episode. (The student cannot see how many subgoals it has achieved, so its value
        # estimate at a truncation could not pay the bonuses back.) A plan for the state after
        # the end would never be followed: none is asked for.
        if terminated or truncated:
            potential = 0.0
        else:
            self._replan()
            potential = self._potential()
        info["shaping"] = self.gamma * potential - episode.potential
        episode.potential = potential
        if terminated or truncated:
            for outcome in episode.outcomes:
                outcome.rewarded = reward > 0
            self.planner.record(episode.outcomes)
        return obs, reward, terminated, truncated, info

    def _look(self, obs: np.ndarray) -> None:
        self._episode.seen |= seen_objects(obs[..., :3])  # the student's view is the image + 2 planes

    def _replan(self) -> None:
        episode = self._episode
        state = self.plan_state
        subgoal = self.planner.plan(state, self)
        if subgoal in episode.done:
            subgoal = None
        # An outcome is one subgoal in one plan state: kept on as the state changes (a key picked
        # up on the student's own), it would credit the earlier state with what the later did.
        last = episode.outcomes[-1] if episode.outcomes else None
        if subgoal is not None and (subgoal != episode.subgoal or last is None or last.state != state):
            episode.outcomes.append(PlanOutcome(state, subgoal, episode.step))
        if subgoal != episode.subgoal:
            episode.route = None
        episode.subgoal = subgoal
        if subgoal is not None and episode.route is None:
            episode.route = Route(self.env.unwrapped, subgoal)
            if episode.route.steps(self.env.unwrapped) is None:
                episode.outcomes[-1].no_way = True

    def _potential(self) -> float:
        episode = self._episode
        near = episode.route.closeness(self.env.unwrapped) if episode.route is not None else 0.0
        return self.scale * (episode.achieved + CLOSENESS_WEIGHT * near)


class ShapedRewards(VecEnvWrapper):
    """Adds each step's ``info["shaping"]`` to the reward the student learns from. Outside
    the Monitor, which records the episodes on the level's own reward."""

    def __init__(self, venv: VecEnv):
        super().__init__(venv)

    def reset(self) -> np.ndarray:
        return self.venv.reset()

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        shaped = rewards + np.array([info.get("shaping", 0.0) for info in infos], dtype=rewards.dtype)
        return obs, shaped, dones, infos
