"""Measuring the student (episodes on held-out seeds, greedy and sampled) and the teacher
(agreement with minigrid's BabyAI bot on a fixed set of probe states)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

import gymnasium as gym
import numpy as np

from workers.levels import TeachableEnv, make_env
from workers.situation import Situation

# Seeds for evaluation episodes and probe states lie far from the training seeds
# (make_vec_env uses seed + rank), so no measurement replays a training layout.
EVAL_SEED_OFFSET = 1_000_000
PROBE_SEED_OFFSET = 2_000_000
T = TypeVar("T")


@dataclass(frozen=True)
class Probe:
    situation: Situation
    expert_action: int


def bot_walk(env: gym.Env, n: int, seed: int, observe: Callable[[gym.Env], T | None], explore: float = 0.5) -> list[T]:
    """``n`` observations ``observe(env)`` (None: skip that state) of states from episodes of
    ``env`` (which runs the BabyAI bot) where each step follows the bot with probability
    1 - ``explore`` and a random action otherwise, so that they also cover the off-course states
    a learning student visits. Episodes on held-out seeds; empty for levels the bot cannot play."""
    rng = np.random.default_rng(seed)
    found: list[T] = []
    episode = 0
    while len(found) < n and episode < 10 * n:
        env.reset(seed=PROBE_SEED_OFFSET + 1000 * seed + episode)
        episode += 1
        done = False
        while not done and len(found) < n:
            expert = env.get_wrapper_attr("expert_action")
            if expert is None:
                break
            seen = observe(env)
            if seen is not None:
                found.append(seen)
            action = expert if rng.random() > explore else int(rng.integers(env.action_space.n))
            _, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    env.close()
    return found


def collect_probes(env_id: str, n: int, seed: int) -> list[Probe]:
    """``n`` states with the bot's action (``bot_walk``): where teacher accuracy is measured."""
    return bot_walk(make_env(env_id, expert=True), n, seed, lambda env: Probe(env.situation, env.expert_action))


@dataclass(frozen=True)
class ProbeAccuracy:
    """The teacher's agreement with the bot on a set of probe states."""

    share: float | None
    """Share of the answered probes where the teacher's most likely action is the bot's
    action; None when no probe is answered."""
    answered: int
    """Probes the teacher had an answer for."""
    probes: int
    """All the probes."""


def probe_accuracy(answer: Callable[[Situation], np.ndarray | None], probes: list[Probe]) -> ProbeAccuracy:
    """The teacher's accuracy on the probes ``answer`` has an answer for (it returns None for
    the others), and how many those are."""
    scored = [(a, p) for a, p in ((answer(p.situation), p) for p in probes) if a is not None]
    hits = sum(int(np.argmax(a) == p.expert_action) for a, p in scored)
    return ProbeAccuracy(hits / len(scored) if scored else None, len(scored), len(probes))


def evaluate(act: Callable[[np.ndarray, TeachableEnv], int], env_id: str, episodes: int, seed: int) -> dict:
    """Run ``episodes`` episodes with ``act(observation, env) -> action``; mean return,
    success rate (episodes with a positive reward) and mean length."""
    env = make_env(env_id)
    returns, lengths = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED_OFFSET + 1000 * seed + episode)
        done, total, length = False, 0.0, 0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs, env))
            total += float(reward)
            length += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(length)
    env.close()
    return {
        "mean_return": float(np.mean(returns)),
        "success_rate": float(np.mean(np.array(returns) > 0)),
        "mean_length": float(np.mean(lengths)),
        "episodes": episodes,
    }


def evaluate_policy(policy: Callable[[np.ndarray, TeachableEnv], np.ndarray], env_id: str, episodes: int, seed: int) -> dict:
    """``evaluate`` a policy given as ``policy(observation, env) -> action probabilities`` twice,
    on the same episodes: greedy (its most likely action; ``mean_return``, ``success_rate``,
    ``mean_length``) and sampled (``sampled_mean_return``...). Both matter: the student has no
    memory, and its greedy policy can turn on the spot forever where the target is out of
    view, while the sampled one, which is what training measures, walks on."""
    greedy = evaluate(lambda obs, env: int(np.argmax(policy(obs, env))), env_id, episodes, seed)
    rng = np.random.default_rng(EVAL_SEED_OFFSET + seed)  # its own: evaluating draws nothing from training's

    def sample(obs: np.ndarray, env: TeachableEnv) -> int:
        probs = np.asarray(policy(obs, env), dtype=np.float64)
        return int(rng.choice(len(probs), p=probs / probs.sum()))

    sampled = evaluate(sample, env_id, episodes, seed)
    return {**greedy, **{f"sampled_{k}": sampled[k] for k in ("mean_return", "success_rate", "mean_length")}}
