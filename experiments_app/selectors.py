"""Reads. Everything a user can reach goes through a team-scoped queryset: a user sees the
experiments and runs of the teams they belong to, and nothing else."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Prefetch, QuerySet

from experiments_app.models import Experiment, Hint, Metric, Run, Team

BACKFILL_HINTS = 20
"""Back-fill sends only the latest hints: the page shows the current one and a short history."""


def team_list(*, user: AbstractBaseUser) -> QuerySet[Team]:
    return Team.objects.filter(memberships__user=user).order_by("name")


def experiment_list(*, user: AbstractBaseUser) -> QuerySet[Experiment]:
    """The user's teams' experiments, newest first, with their runs prefetched."""
    return (
        Experiment.objects.filter(team__memberships__user=user)
        .select_related("team", "owner")
        .prefetch_related(Prefetch("runs", queryset=Run.objects.order_by("seed")))
    )


def experiment_get(*, user: AbstractBaseUser, experiment_id: int) -> Experiment | None:
    return experiment_list(user=user).filter(pk=experiment_id).first()


def run_get(*, user: AbstractBaseUser, run_id: int) -> Run | None:
    """The run if one of the user's teams owns it, else None (whether or not it exists)."""
    return (
        Run.objects.filter(pk=run_id, experiment__team__memberships__user=user)
        .select_related("experiment", "experiment__team", "experiment__owner")
        .first()
    )


def run_stop_requested(*, run_id: int) -> bool:
    return Run.objects.filter(pk=run_id, stop_requested=True).exists()


def run_state(*, run: Run) -> dict[str, Any]:
    """What the run page shows about the run itself (JSON-able)."""
    return {
        "id": run.pk,
        "status": run.status,
        "final": run.is_final,
        "timesteps": run.timesteps,
        "total_timesteps": run.total_timesteps,
        "fps": run.fps,
        "eta_s": run.eta_s,
        "last_seq": run.last_seq,
        "stop_requested": run.stop_requested,
        "error": run.error,
        "teacher_fault": run.teacher_fault,
        "summary": run.summary,
        "worker_host": run.worker_host,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def metric_as_event(metric: Metric) -> dict[str, Any]:
    return {"seq": metric.seq, "kind": metric.kind, "timestep": metric.timestep, "time": metric.time, "data": metric.data}


def hint_as_event(hint: Hint) -> dict[str, Any]:
    return {
        "seq": hint.seq,
        "kind": "hint",
        "timestep": hint.timestep,
        "time": hint.time,
        "data": {
            "situation": hint.situation,
            "situation_key": hint.situation_key,
            "distribution": hint.distribution,
            "teacher_action": hint.teacher_action,
            "action_taken": hint.action_taken,
            "feedback": hint.feedback,
            "weight": hint.weight,
            "source": hint.source,
        },
    }


def run_events_since(*, run_id: int, after_seq: int, hint_limit: int = BACKFILL_HINTS) -> list[dict[str, Any]]:
    """The run's stored events with seq > after_seq, in seq order, as the engine emitted them:
    every metric, evaluation and progress event, and the latest ``hint_limit`` hints."""
    metrics = [metric_as_event(m) for m in Metric.objects.filter(run_id=run_id, seq__gt=after_seq).order_by("seq")]
    latest_hints = Hint.objects.filter(run_id=run_id, seq__gt=after_seq).order_by("-seq")[:hint_limit]
    hints = [hint_as_event(h) for h in latest_hints]
    return sorted(metrics + hints, key=lambda e: e["seq"])
