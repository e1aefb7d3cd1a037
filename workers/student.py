"""The student: stable-baselines3 PPO, plus a distillation step toward the guidance.

``GuidedPPO.train`` is PPO's own update followed by ``guidance_epochs`` passes of policy
distillation over the same rollout: for every sample that carries advice ``q`` (the engine fills
``guide_probs`` and ``guide_weight`` while it collects the rollout), minimise the mean over the
advised samples of

    weight * KL(q || pi(.|s))

with an Adam optimizer of its own, at learning rate ``guidance_lr`` (the engine anneals it to
zero, as LLM4Teach and kickstarting anneal their guidance, so the student ends up optimising
its own return alone). Its own optimizer, because Adam ignores the scale of a loss: sharing
PPO's, a distillation "coefficient" only mixed the two losses' gradient statistics, and PPO's
learning rate (3e-4) let ten passes a rollout fit the BabyAI bot's actions too slowly for its
guidance to help much (the oracle reached 0.9 at 27,648 frames). At 3x PPO's (9e-4) it reaches
it at 7,168, a median of 5 seeds (benchmarks/results/speedup.txt). Doing the distillation as
its own step, after PPO's clipped update, keeps SB3's PPO untouched and the guidance step readable.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class MinigridCNN(BaseFeaturesExtractor):
    """The small CNN from minigrid's training docs, over the 7x7 egocentric view."""

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 128):
        super().__init__(observation_space, features_dim)
        channels = observation_space.shape[0]
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 16, (2, 2)),
            nn.ReLU(),
            nn.Conv2d(16, 32, (2, 2)),
            nn.ReLU(),
            nn.Conv2d(32, 64, (2, 2)),
            nn.ReLU(),
            nn.Flatten(),
        )
        with th.no_grad():
            n_flatten = self.cnn(th.as_tensor(observation_space.sample()[None]).float()).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flatten, features_dim), nn.ReLU())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.linear(self.cnn(observations))


class GuidedPPO(PPO):
    """PPO whose update also pulls the policy toward the teacher's distributions."""

    def _setup_model(self) -> None:
        super()._setup_model()
        n_actions = int(self.action_space.n)  # type: ignore[attr-defined]
        self.guide_probs = np.zeros((self.n_steps, self.n_envs, n_actions), np.float32)
        """Teacher distribution for each rollout sample (row step, column env)."""
        self.guide_weight = np.zeros((self.n_steps, self.n_envs), np.float32)
        """How much each sample's teacher distribution counts (0: no teacher answer)."""
        self.guidance_lr = 0.0
        """Learning rate of this rollout's distillation step (0: none)."""
        self.guidance_epochs = 1
        self.guidance_tolerance = 0.0
        """A sample sits out a distillation pass while the student's KL to its advice is below this."""
        self.last_guidance_loss: float | None = None
        """The mean weighted KL to the advice over the rollout's advised samples, after distillation."""
        self.distill_optimizer = th.optim.Adam(self.policy.parameters(), lr=self.learning_rate)  # type: ignore[arg-type]

    def _excluded_save_params(self) -> list[str]:
        # A checkpoint keeps PPO's optimizer; the distillation step's starts afresh on resume
        # (its moments adapt within a few steps, and checkpoints from before it still load).
        return [*super()._excluded_save_params(), "distill_optimizer"]

    def train(self) -> None:
        super().train()
        self.last_guidance_loss = None
        flat = self.rollout_buffer.swap_and_flatten
        weights = flat(self.guide_weight).reshape(-1)
        advised = np.flatnonzero(weights > 0)
        if self.guidance_lr <= 0 or len(advised) == 0:
            return
        for group in self.distill_optimizer.param_groups:
            group["lr"] = self.guidance_lr
        # After PPO's update the buffer holds its observations flattened in the same order.
        obs = self.rollout_buffer.to_torch(self.rollout_buffer.observations[advised])
        q = th.as_tensor(flat(self.guide_probs).reshape(len(weights), -1)[advised], device=self.device)
        w = th.as_tensor(weights[advised], device=self.device)
        for _ in range(self.guidance_epochs):
            with th.no_grad():
                unfitted = np.flatnonzero((self._kl(obs, q) > self.guidance_tolerance).cpu().numpy())
            if len(unfitted) == 0:
                break
            self._distill(obs, q, w, np.random.permutation(unfitted))
        with th.no_grad():
            self.last_guidance_loss = float((w * self._kl(obs, q)).mean())

    def _kl(self, obs: th.Tensor, q: th.Tensor) -> th.Tensor:
        """KL(q || pi(.|obs)) per sample."""
        log_pi = self.policy.get_distribution(obs).distribution.logits.log_softmax(-1)
        return (q * (th.log(q.clamp_min(1e-8)) - log_pi)).sum(-1)

    def _distill(self, obs: th.Tensor, q: th.Tensor, w: th.Tensor, order: np.ndarray) -> None:
        """One pass over the samples ``order`` in minibatches."""
        for start in range(0, len(order), self.batch_size):
            idx = th.as_tensor(order[start : start + self.batch_size])
            # A mean over the samples, not over the weights: a weight of 0.2 pulls a fifth as hard.
            weighted_kl = (w[idx] * self._kl(obs[idx], q[idx])).mean()
            self.distill_optimizer.zero_grad()
            weighted_kl.backward()
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.distill_optimizer.step()
