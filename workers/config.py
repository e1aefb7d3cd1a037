"""A run's whole configuration, as one dataclass that round-trips through JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any

from workers.models import DEFAULT_TEACHER


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


class GuidanceKind(str, Enum):
    """What the teacher gives the student (the modes that guide it)."""

    ACTIONS = "actions"
    """A distribution over actions for each situation, which the student is distilled toward."""
    SUBGOALS = "subgoals"
    """A plan: the next subgoal, toward which the student's reward is shaped."""


DEFAULT_ENV = "BabyAI-GoToRedBallNoDists-v0"
POLICIES = ("cnn", "mlp")
"""Student networks: minigrid's small CNN over the 7x7 view, or an MLP."""


@dataclass
class RunConfig:
    """Everything that decides what a run does. Same config and seed, same ``ppo`` curve."""

    env_id: str = DEFAULT_ENV
    """Any BabyAI-* or MiniGrid-* id that minigrid registers."""
    mode: Mode = Mode.BIDIRECTIONAL
    """ppo, teacher, unidirectional, bidirectional or oracle."""
    guidance_kind: GuidanceKind = GuidanceKind.ACTIONS
    """What the teacher gives: "actions" (a distribution over actions, distilled into the
    student) or "subgoals" (the next subgoal, toward which the reward is shaped). ppo ignores it."""
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
    guidance_coef: float = 3.0
    """Strength of the guidance at the start: the distillation step's learning rate, as a
    multiple of learning_rate. (The distillation step has an Adam optimizer of its own, and
    Adam ignores the scale of a loss, so its learning rate is what sets how hard it pulls.)"""
    guidance_anneal_frac: float = 1.0
    """The guidance strength falls linearly to zero over this fraction of total_timesteps."""
    guidance_epochs: int = 10
    """Distillation passes over each rollout, after PPO's update..."""
    guidance_tolerance: float = 0.05
    """...over the samples where the student's KL to the advice is still above this (nats):
    a sample the student already follows has nothing left to teach, and once no sample is
    left, the passes stop. 0: every advised sample in every pass."""
    subgoal_shaping: float = 1.0
    """Subgoal guidance: the reward a reached subgoal is worth (the shaping's scale; getting
    next to its object is worth up to half of it). The student pays it back when the episode
    ends, so it changes how fast the student finds the reward, not what is best."""
    teacher_model: str = DEFAULT_TEACHER
    """An installed teacher's name (see ``python -m workers models``) or a GGUF path inside a
    configured model directory."""
    teacher_temperature: float = 0.2
    """The LLM teacher's action distribution is sharpened to p^(1/T) before it guides: its raw
    distributions are flat, and a student that copied them would stay close to random."""
    teacher_timeout_s: float = 20.0
    """An LLM call slower than this is a fault: the run goes on student-only."""
    feedback_min_visits: int = 8
    """An action counts in the student's verdict on a situation once it has been tried there
    this many times."""
    feedback_confidence: float = 1.5
    """...and the verdict's action must beat every other counted action there by this many
    standard errors of the advantage difference."""
    probe_states: int = 200
    """States (with the BabyAI bot's action) on which teacher accuracy is measured."""
    eval_interval: int = 25_000
    """Frames between evaluations (0: only at the end)."""
    eval_episodes: int = 50
    """Held-out episodes per evaluation, each played twice: greedy and sampled from the policy.
    Over the run, evaluation may play no more episodes than training plays frames."""
    checkpoint_interval: int = 10
    """Rollouts between checkpoints (0: only at stop and at the end)."""
    frame_interval_s: float = 0.06
    """Seconds per live frame of environment 0, on average: frames come in bursts of
    consecutive steps, which the run page plays at this pace (0: no frames)."""
    hint_interval_s: float = 0.5
    """Minimum seconds between hint events."""
    return_threshold: float = 0.9
    """frames_to_threshold is the first frame at which the training return reaches this."""

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["mode"] = self.mode.value
        raw["guidance_kind"] = self.guidance_kind.value
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
        if "guidance_kind" in values:
            values["guidance_kind"] = GuidanceKind(values["guidance_kind"])
        return cls(**values)

    @property
    def rollout_frames(self) -> int:
        return self.n_envs * self.n_steps

    @property
    def teacher(self) -> str | None:
        """Who guides the run, as its ``run_started`` event names it: the LLM's model, the
        BabyAI bot (the oracle), or None."""
        if self.mode.uses_llm:
            return self.teacher_model
        return "babyai-bot" if self.mode == Mode.ORACLE else None

    @property
    def evaluation_episodes(self) -> int:
        """The most episodes evaluation plays over the run: at the first rollout boundary past
        each multiple of eval_interval before the end (at most once a rollout), and at the end;
        each time eval_episodes greedy and as many sampled (``engine.train``)."""
        rollouts = -(-self.total_timesteps // self.rollout_frames)
        periodic = min(rollouts - 1, (self.total_timesteps - 1) // self.eval_interval) if self.eval_interval > 0 else 0
        return 2 * self.eval_episodes * (max(periodic, 0) + 1)

    def problems(self) -> dict[str, str]:
        """Why this config cannot run, by field name ({} when it can). The one check of what a
        valid run is: the engine, the launch form, ``manage.py launch`` and ``import_study``
        all make it."""
        from workers.levels import bot_can_play, check_level

        errors: dict[str, str] = {}
        try:
            check_level(self.env_id)
        except ValueError as exc:
            errors["env_id"] = str(exc)
        if self.policy not in POLICIES:
            errors["policy"] = f"must be one of {', '.join(POLICIES)}"
        rollout = self.rollout_frames
        if self.total_timesteps < rollout:
            errors["total_timesteps"] = f"must be at least one rollout (n_envs x n_steps = {rollout} frames)"
        if self.batch_size > rollout:
            errors["batch_size"] = f"must not exceed one rollout (n_envs x n_steps = {rollout} frames)"
        if rollout > 0 and "total_timesteps" not in errors and self.evaluation_episodes > self.total_timesteps:
            # An episode is at least a frame: past this, evaluating costs more than training.
            errors["eval_interval" if self.eval_interval > 0 else "eval_episodes"] = (
                f"evaluation would play up to {self.evaluation_episodes:,} episodes (eval_episodes greedy and as many "
                f"sampled, {self.evaluation_episodes // (2 * self.eval_episodes):,} times), more than the "
                f"{self.total_timesteps:,} frames of training: evaluate less often or on fewer episodes"
            )
        if self.mode.uses_llm and not self.teacher_model:
            errors["teacher_model"] = f"the {self.mode.value} mode needs a teacher model"
        if self.mode == Mode.TEACHER and self.guidance_kind == GuidanceKind.SUBGOALS:
            errors["guidance_kind"] = "the teacher mode plays the teacher's actions: choose actions"
        if self.subgoal_shaping < 0:
            errors["subgoal_shaping"] = "must not be negative"
        if self.mode == Mode.ORACLE and "env_id" not in errors and not bot_can_play(self.env_id):
            errors["mode"] = f"oracle mode needs the BabyAI bot, which cannot play {self.env_id}"
        return errors

    def validate(self) -> None:
        """Raise ValueError naming every problem (``problems``)."""
        errors = self.problems()
        if errors:
            raise ValueError("; ".join(f"{name}: {message}" for name, message in errors.items()))


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
