"""A run's whole configuration, as one dataclass that round-trips through JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any


class Mode(str, Enum):
    """Who teaches whom."""

    PPO = "ppo"
    """The student alone."""
    TEACHER = "teacher"
    """The LLM teacher acts alone; nothing learns. Measures the teacher."""
    UNIDIRECTIONAL = "unidirectional"
    """The teacher guides the student; the teacher never hears back."""
    BIDIRECTIONAL = "bidirectional"
    """As unidirectional, and the student's feedback changes what the teacher says."""
    ORACLE = "oracle"
    """minigrid's BabyAI bot guides the student: the upper bound of guidance."""

    @property
    def uses_llm(self) -> bool:
        return self in (Mode.TEACHER, Mode.UNIDIRECTIONAL, Mode.BIDIRECTIONAL)

    @property
    def guides_student(self) -> bool:
        return self in (Mode.UNIDIRECTIONAL, Mode.BIDIRECTIONAL, Mode.ORACLE)


DEFAULT_ENV = "BabyAI-GoToRedBallNoDists-v0"


@dataclass
class RunConfig:
    """Everything that decides what a run does. Same config and seed, same ``ppo`` curve."""

    env_id: str = DEFAULT_ENV
    """Any BabyAI-* or MiniGrid-* id that minigrid registers."""
    mode: Mode = Mode.BIDIRECTIONAL
    """ppo, teacher, unidirectional, bidirectional or oracle."""
    total_timesteps: int = 100_000
    """Environment frames to train for (all parallel environments together)."""
    seed: int = 0
    """Seeds the policy, the environments, the evaluation episodes and the probe states."""
    n_envs: int = 4
    """Parallel environments (in one process)."""
    policy: str = "cnn"
    """Student network: "cnn" (minigrid's small CNN over the 7x7 view) or "mlp"."""
    n_steps: int = 256
    """Steps per environment per rollout; a rollout is n_envs * n_steps frames."""
    batch_size: int = 64
    """PPO minibatch size."""
    n_epochs: int = 10
    """PPO epochs per rollout."""
    learning_rate: float = 3e-4
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_range: float = 0.2
    """PPO clipping."""
    ent_coef: float = 0.0
    """Entropy bonus."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Gradient clipping."""
    guidance_coef: float = 1.0
    """Initial weight of the distillation loss KL(teacher || student)."""
    guidance_anneal_frac: float = 0.5
    """The guidance weight falls linearly to zero over this fraction of total_timesteps."""
    guidance_epochs: int = 1
    """Distillation passes over each rollout, after PPO's update."""
    teacher_model: str = "smollm2-135m-instruct-q4_1"
    """An installed teacher's name (see ``python -m workers models``) or a GGUF path inside a
    configured model directory."""
    teacher_timeout_s: float = 20.0
    """An LLM call slower than this is a fault: the run goes on student-only."""
    feedback_min_visits: int = 8
    """Student feedback for a situation is sent once each of its leading actions has been
    tried this many times."""
    feedback_margin: float = 0.02
    """...and the best action's mean advantage beats the runner-up by at least this."""
    probe_states: int = 200
    """States (with the BabyAI bot's action) on which teacher accuracy is measured."""
    eval_interval: int = 25_000
    """Frames between evaluations (0: only at the end)."""
    eval_episodes: int = 50
    """Held-out episodes per evaluation, each played twice: greedy and sampled from the policy."""
    checkpoint_interval: int = 10
    """Rollouts between checkpoints (0: only at stop and at the end)."""
    frame_interval_s: float = 0.08
    """Minimum seconds between live frames of environment 0 (0: no frames)."""
    hint_interval_s: float = 0.5
    """Minimum seconds between hint events."""
    return_threshold: float = 0.9
    """frames_to_threshold is the first frame at which the training return reaches this."""

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["mode"] = self.mode.value
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        values = dict(raw)
        if "mode" in values:
            values["mode"] = Mode(values["mode"])
        return cls(**values)

    @property
    def rollout_frames(self) -> int:
        return self.n_envs * self.n_steps


def field_docs() -> dict[str, str]:
    """Each field's docstring, for --help and the web form's help texts."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(RunConfig))
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())  # type: ignore[attr-defined]
    return docs
