"""Levels: any BabyAI-* or MiniGrid-* environment that minigrid registers, through one code path.

The only thing a level declares is its action subset (``ACTION_SUBSETS``): the actions that can
matter there, so that neither the student nor the teacher wastes probability on ``done`` or on
``pickup`` in a level with nothing to pick up. Everything else is generic:

* the student sees the 7x7 egocentric view plus the mission's target, encoded as two constant
  planes (object type, colour) so that levels whose mission changes per episode stay learnable;
* the situation (``workers.situation``) of the current observation is the wrapper's
  ``situation`` attribute, computed when first read (PPO alone never pays for it), so a
  vectorised training loop can read it with ``get_attr``;
* with ``expert=True`` the wrapper also runs minigrid's BabyAI bot alongside the episode and
  keeps the bot's action for the current state as ``expert_action``. The bot understands only
  BabyAI-* levels; on MiniGrid-* levels ``expert_action`` stays None.
"""

from __future__ import annotations

import fnmatch
from functools import lru_cache

import gymnasium as gym
import minigrid  # noqa: F401  (registers the BabyAI-* and MiniGrid-* ids)
import numpy as np
from minigrid.core.actions import Actions
from minigrid.utils.baby_ai_bot import BabyAIBot

from workers.situation import Situation, describe, mission_targets, target_planes

NAVIGATION = ("left", "right", "forward")
MANIPULATION = ("left", "right", "forward", "pickup", "drop", "toggle")

# First match wins. A level not listed here gets every action but ``done``.
ACTION_SUBSETS: list[tuple[str, tuple[str, ...]]] = [
    ("BabyAI-GoToImpUnlock-*", ("left", "right", "forward", "pickup", "toggle")),
    ("BabyAI-GoToSeq*", ("left", "right", "forward", "toggle")),
    ("BabyAI-GoTo*", NAVIGATION),
    ("MiniGrid-GoTo*", NAVIGATION),
    ("MiniGrid-Empty-*", NAVIGATION),
    ("MiniGrid-FourRooms-*", NAVIGATION),
    ("MiniGrid-LavaGap*", NAVIGATION),
    ("MiniGrid-LavaCrossing*", NAVIGATION),
    ("MiniGrid-SimpleCrossing*", NAVIGATION),
    ("MiniGrid-Dynamic-Obstacles-*", NAVIGATION),
    ("MiniGrid-DistShift*", NAVIGATION),
    ("MiniGrid-LockedRoom-*", ("left", "right", "forward", "pickup", "toggle")),
    ("MiniGrid-DoorKey-*", ("left", "right", "forward", "pickup", "toggle")),
    ("MiniGrid-Unlock*", ("left", "right", "forward", "pickup", "toggle")),
    ("BabyAI-Unlock*", ("left", "right", "forward", "pickup", "toggle")),
    ("BabyAI-Open*", ("left", "right", "forward", "toggle")),
    ("BabyAI-Pickup*", ("left", "right", "forward", "pickup")),
    ("BabyAI-UnblockPickup*", ("left", "right", "forward", "pickup", "drop")),
]

ACTION_IDS = {a.name: int(a) for a in Actions}


def action_subset(env_id: str) -> tuple[str, ...]:
    """Names of the actions the level can use, in minigrid's action order."""
    for pattern, names in ACTION_SUBSETS:
        if fnmatch.fnmatch(env_id, pattern):
            return names
    return MANIPULATION


@lru_cache(maxsize=1)
def available_levels() -> list[str]:
    """Every BabyAI-* and MiniGrid-* id registered with gymnasium, sorted."""
    return sorted(k for k in gym.registry if k.startswith(("BabyAI-", "MiniGrid-")))


def check_level(env_id: str) -> None:
    """Raise ValueError for an id that is not a registered BabyAI or MiniGrid level."""
    if env_id not in available_levels():
        raise ValueError(f"unknown level {env_id!r}: not a BabyAI-* or MiniGrid-* id minigrid registers")


def bot_can_play(env_id: str) -> bool:
    """Whether minigrid's BabyAI bot can play ``env_id`` (it knows BabyAI's missions only)."""
    env = make_env(env_id, expert=True)
    try:
        env.reset(seed=0)
        return env.expert_action is not None
    finally:
        env.close()


class TeachableEnv(gym.Wrapper):
    """A minigrid level with the level's action subset, the student's observation, and the
    current situation (and optionally the BabyAI bot's action) kept for the teacher."""

    def __init__(self, env: gym.Env, actions: tuple[str, ...], expert: bool = False):
        super().__init__(env)
        self.action_names = actions
        self._action_ids = [ACTION_IDS[a] for a in actions]
        self.action_space = gym.spaces.Discrete(len(actions))
        view = env.observation_space["image"].shape
        self.observation_space = gym.spaces.Box(0, 255, (view[0], view[1], view[2] + 2), np.uint8)
        self.expert = expert
        self.expert_action: int | None = None
        """Index (into ``action_names``) of the bot's action for the current state, or None."""
        self._bot: BabyAIBot | None = None
        self._mission = ""
        self._planes = np.zeros((view[0], view[1], 2), np.uint8)
        self._raw_obs: dict | None = None
        self._situation: Situation | None = None

    @property
    def bot(self) -> BabyAIBot | None:
        """The BabyAI bot playing alongside (``expert=True`` on a BabyAI level), or None."""
        return self._bot

    @property
    def situation(self) -> Situation:
        """The teacher's view of the current observation."""
        if self._situation is None:
            assert self._raw_obs is not None, "reset() first"
            self._situation = describe(self._raw_obs["image"], self._raw_obs["mission"], self.action_names)
        return self._situation

    def _observe(self, obs: dict) -> np.ndarray:
        self._raw_obs, self._situation = obs, None
        return np.concatenate([obs["image"], self._planes], axis=2)

    def _ask_bot(self, last_action: int | None) -> None:
        if self._bot is None:
            return
        try:
            raw = self._bot.replan(last_action)  # type: ignore[union-attr]
        except Exception:  # the bot gives up on some states (e.g. blocked plans); no advice then
            self.expert_action = None
            return
        self.expert_action = self._action_ids.index(int(raw)) if int(raw) in self._action_ids else None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if obs["mission"] != self._mission:
            self._mission = obs["mission"]
            self._planes = target_planes(mission_targets(self._mission), obs["image"].shape[:2])
        # The bot follows BabyAI's instruction objects; MiniGrid-* levels have none, so no expert.
        if self.expert and hasattr(self.env.unwrapped, "instrs"):
            self._bot = BabyAIBot(self.env.unwrapped)
            self._ask_bot(None)
        return self._observe(obs), info

    def step(self, action: int):
        raw_action = self._action_ids[int(action)]
        obs, reward, terminated, truncated, info = self.env.step(raw_action)
        if not (terminated or truncated):
            self._ask_bot(raw_action)
        return self._observe(obs), reward, terminated, truncated, info


def make_env(env_id: str, *, expert: bool = False, max_steps: int | None = None) -> TeachableEnv:
    """One teachable environment for ``env_id`` (raises ValueError for an unknown id)."""
    check_level(env_id)
    kwargs = {"max_steps": max_steps} if max_steps else {}
    return TeachableEnv(gym.make(env_id, **kwargs), action_subset(env_id), expert=expert)
