"""What a study (``python -m study``) is in the dashboard: one experiment per (level, mode) of
its spec, named and tagged here, one run per seed. ``manage.py import_study`` (runs trained by
the local runner) and ``study.lab`` (runs trained by the Celery workers) both create and find
them through these, so that either finds the other's experiments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from experiments_app.hyperparameters import OWN_FIELDS
from experiments_app.models import Experiment
from study.spec import Level, StudySpec
from workers.config import Mode


def study_experiment_name(*, spec: StudySpec, mode: str, env_id: str, prefix: str | None = None) -> str:
    """``<prefix>: <mode> on <level>``, the prefix ``study <spec name>`` unless given."""
    return f"{prefix or f'study {spec.name}'}: {mode} on {env_id}"


def study_experiment_arguments(*, spec: StudySpec, level: Level, mode: str, seeds: Sequence[int]) -> dict[str, Any]:
    """``services.experiment_create``'s arguments for the (level, mode) of ``spec`` with these
    seeds, but for owner, team, name, description and enqueue: the spec's RunConfig of the
    cell (a study's mode name may carry a guidance kind), its fields other than the
    experiment's own as hyperparameters, and the tags ``study`` and ``study:<spec name>``."""
    config = spec.config(level, mode, seeds[0])
    return {
        "env_id": level.env_id,
        "mode": config.mode.value,
        "teacher_model": config.teacher_model,
        "hyperparameters": {k: v for k, v in config.to_dict().items() if k not in OWN_FIELDS},
        "seeds": list(seeds),
        "tags": ["study", f"study:{spec.name}"],
    }


def study_experiment_conflict(*, experiment: Experiment, arguments: dict[str, Any]) -> str | None:
    """Why an existing experiment of the cell's name is not the cell described by
    ``arguments`` (``study_experiment_arguments``), or None when it is."""
    if (experiment.env_id, experiment.mode) != (arguments["env_id"], arguments["mode"]):
        return f"an experiment of that name exists for {experiment.mode} on {experiment.env_id}"
    # An experiment keeps its teacher only in the modes that ask an LLM (services.experiment_create).
    if Mode(experiment.mode).uses_llm and experiment.teacher_model != arguments["teacher_model"]:
        return f"an experiment of that name exists with the teacher {experiment.teacher_model}"
    if experiment.hyperparameters != arguments["hyperparameters"]:
        changed = sorted(k for k in {*experiment.hyperparameters, *arguments["hyperparameters"]}
                         if experiment.hyperparameters.get(k) != arguments["hyperparameters"].get(k))
        return f"an experiment of that name exists with other settings ({', '.join(changed)})"
    return None
