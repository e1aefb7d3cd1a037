"""Which RunConfig fields an experiment's hyperparameters hold, and their allowed ranges.

The level, mode, seed and teacher model are an experiment's own fields; every other RunConfig
field is a hyperparameter. The ranges reject values that cannot work (a zero batch, a discount
above 1) or that would swamp a 2-core machine, and say why.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache
from typing import Any

from enum import Enum

from workers.config import POLICIES, GuidanceKind, Mode, RunConfig, field_docs

OWN_FIELDS = frozenset({"env_id", "mode", "seed", "teacher_model"})


@dataclass(frozen=True)
class Bounds:
    low: float
    high: float


RANGES: dict[str, Bounds] = {
    "total_timesteps": Bounds(64, 50_000_000),
    "n_envs": Bounds(1, 64),
    "n_steps": Bounds(8, 8192),
    "batch_size": Bounds(2, 65536),
    "n_epochs": Bounds(1, 100),
    "learning_rate": Bounds(1e-7, 1.0),
    "gamma": Bounds(0.0, 1.0),
    "gae_lambda": Bounds(0.0, 1.0),
    "clip_range": Bounds(0.01, 1.0),
    "ent_coef": Bounds(0.0, 1.0),
    "vf_coef": Bounds(0.0, 10.0),
    "max_grad_norm": Bounds(0.01, 100.0),
    "guidance_coef": Bounds(0.0, 100.0),
    "guidance_anneal_frac": Bounds(0.0, 1.0),
    "guidance_epochs": Bounds(1, 100),
    "guidance_tolerance": Bounds(0.0, 10.0),
    "teacher_temperature": Bounds(0.01, 10.0),
    "teacher_timeout_s": Bounds(0.5, 600.0),
    "feedback_min_visits": Bounds(1, 100_000),
    "feedback_confidence": Bounds(0.0, 10.0),
    "probe_states": Bounds(1, 10_000),
    "eval_interval": Bounds(0, 50_000_000),
    "eval_episodes": Bounds(1, 1000),
    "checkpoint_interval": Bounds(0, 100_000),
    "frame_interval_s": Bounds(0.0, 60.0),
    "hint_interval_s": Bounds(0.0, 60.0),
    "return_threshold": Bounds(0.0, 1.0),
    "subgoal_shaping": Bounds(0.0, 100.0),
}
CHOICES: dict[str, tuple[str, ...]] = {"policy": POLICIES, "guidance_kind": tuple(k.value for k in GuidanceKind)}


@cache
def hyperparameter_fields() -> tuple[tuple[str, type, Any, str], ...]:
    """(name, type, default, help text) of every hyperparameter, in RunConfig order. Read once
    per process: the help texts come from parsing RunConfig's source (15 ms), and the launch
    page asks for the defaults of every preset on every level and mode."""
    docs = field_docs()
    # A choice among an Enum's members (the guidance kind) is stored as its value, a string.
    return tuple(
        (f.name, str, f.default.value, docs.get(f.name, "")) if isinstance(f.default, Enum)
        else (f.name, type(f.default), f.default, docs.get(f.name, ""))
        for f in fields(RunConfig)
        if f.name not in OWN_FIELDS
    )


def hyperparameter_defaults() -> dict[str, Any]:
    return {name: default for name, _, default, _ in hyperparameter_fields()}


def hyperparameters_validate(values: dict[str, Any]) -> dict[str, str]:
    """Errors by field name ({} when valid). ``values`` must hold every hyperparameter, each of
    its field's type (an int is accepted for a float field), within its range."""
    if not isinstance(values, dict):
        return {"__all__": "hyperparameters must be an object"}
    errors: dict[str, str] = {}
    specs = {name: kind for name, kind, _, _ in hyperparameter_fields()}
    for name in sorted(set(values) - set(specs)):
        errors[name] = "is not a hyperparameter"
    for name, kind in specs.items():
        if name not in values:
            errors[name] = "is missing"
            continue
        value = values[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            errors[name] = f"must be of type {kind.__name__}"
        elif name in RANGES and not RANGES[name].low <= value <= RANGES[name].high:
            errors[name] = f"must be between {RANGES[name].low:g} and {RANGES[name].high:g}"
        elif name in CHOICES and value not in CHOICES[name]:
            errors[name] = f"must be one of {', '.join(CHOICES[name])}"
    return errors


def experiment_problems(*, env_id: str, mode: str, teacher_model: str, hyperparameters: Any) -> dict[str, str]:
    """Why an experiment with these fields could not run, by field name ({} when it can): the
    hyperparameters' types and ranges, then the engine's own check of a run
    (``RunConfig.problems``: the level, a rollout's size, the evaluation budget, the BabyAI bot
    for the oracle, a teacher for the LLM modes). The form, the model's ``clean`` (so ``manage.py launch`` and
    ``import_study``) and the engine all come down to that one check."""
    errors = hyperparameters_validate(hyperparameters)
    if mode not in {m.value for m in Mode}:
        errors["mode"] = f"must be one of {', '.join(m.value for m in Mode)}"
    if errors:
        return errors
    return run_config(env_id=env_id, mode=mode, teacher_model=teacher_model, seed=0, hyperparameters=hyperparameters).problems()


def run_config(*, env_id: str, mode: str, teacher_model: str, seed: int, hyperparameters: dict[str, Any]) -> RunConfig:
    """The engine's config for one seed of an experiment."""
    raw = {**hyperparameters, "env_id": env_id, "mode": mode, "seed": seed}
    if teacher_model or Mode(mode).uses_llm:
        raw["teacher_model"] = teacher_model
    return RunConfig.from_dict(raw)
