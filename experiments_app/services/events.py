"""Storing a run's events (``run_record_events``) and publishing its live frames."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from experiments_app import rollups
from experiments_app.models import Hint, Metric, Run
from experiments_app.services import notify
from experiments_app.services.claims import RunClaimLost, _claim_updates
from workers.events import Event, EventKind

logger = logging.getLogger(__name__)

METRIC_KINDS = {
    EventKind.METRICS: Metric.Kind.METRICS,
    EventKind.EVALUATION: Metric.Kind.EVALUATION,
    EventKind.PROGRESS: Metric.Kind.PROGRESS,
}
CHARTED = ("mean_return", "success_rate", "teacher_accuracy", "guidance_coef", "fps", "sampled_mean_return",
           "sampled_success_rate")
"""Event data fields stored as Metric columns (the rolled-up series read them)."""


def _started(run: Run, data: dict[str, Any]) -> dict[str, Any]:
    updates: dict[str, Any] = {"total_timesteps": int(data.get("config", {}).get("total_timesteps") or run.total_timesteps)}
    if isinstance(data.get("start_timestep"), int):
        updates["timesteps"] = data["start_timestep"]
    if isinstance(data.get("checkpoint_seq"), int):
        updates["rewound_attempt"] = run.attempt  # its events after the checkpoint are gone: pages reload
    return updates


def _progress(run: Run, data: dict[str, Any]) -> dict[str, Any]:
    return {"timesteps": int(data["timesteps"]), "total_timesteps": int(data["total_timesteps"]),
            "fps": data.get("fps"), "eta_s": data.get("eta_s")}


def _finished(run: Run, data: dict[str, Any]) -> dict[str, Any]:
    if data.get("status") == "succeeded":
        status = Run.Status.SUCCEEDED
    else:
        # "stopped": by the user (cancelled) or by a worker shutting down (resumable).
        status = Run.Status.CANCELLED if run.stop_requested else Run.Status.INTERRUPTED
    summary = data.get("summary") or {}
    updates: dict[str, Any] = {"status": status, "summary": summary, "eta_s": None,
                               "final_eval_return": _number(summary.get("final_eval_return"))}
    if "timesteps" in summary:
        updates["timesteps"] = int(summary["timesteps"])
    if status != Run.Status.INTERRUPTED:
        updates["finished_at"] = timezone.now()
    return updates


def _failed(run: Run, data: dict[str, Any]) -> dict[str, Any]:
    error, trace = str(data.get("error", "failed")), data.get("traceback")
    return {"status": Run.Status.FAILED, "error": f"{error}\n\n{trace}" if trace else error,
            "finished_at": timezone.now(), "eta_s": None}


RUN_UPDATES: dict[EventKind, Callable[[Run, dict[str, Any]], dict[str, Any]]] = {
    EventKind.RUN_STARTED: _started,
    EventKind.PROGRESS: _progress,
    EventKind.CHECKPOINT: lambda run, data: {"checkpoint_path": str(data["path"])[:500]},
    EventKind.TEACHER_FAULT: lambda run, data: {"teacher_fault": str(data.get("error", ""))},
    EventKind.RUN_FINISHED: _finished,
    EventKind.RUN_FAILED: _failed,
}
"""{event kind: the run fields an event of that kind sets}; the other kinds change no field."""


def _run_updates(run: Run, events: Sequence[Event]) -> dict[str, Any]:
    """Run fields that these events change, applied in seq order."""
    updates: dict[str, Any] = {}
    for event in events:
        if event.kind in RUN_UPDATES:
            updates.update(RUN_UPDATES[event.kind](run, event.data))
    return updates


def run_record_events(*, run_id: int, events: Sequence[Event], attempt: int | None = None) -> None:
    """Store a batch of a run's events (frames excluded: they are never stored) and update the
    run from them in one transaction, then send the batch and the run's new state to the run's
    group. Storing is idempotent per (run, seq): a batch written twice is stored once.

    A worker passes its ``attempt`` (from ``run_claim``): if the run is no longer that
    attempt's, nothing is written and RunClaimLost is raised. Without it (an import of
    finished runs) the batch is written as is."""
    stored = [e for e in events if e.kind != EventKind.FRAME]
    if not stored:
        return
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            # An interrupted run may be deleted while its frozen worker still lives.
            raise RunClaimLost(f"run {run_id} was deleted") if attempt is not None else Run.DoesNotExist(f"no run {run_id}")
        claim = _claim_updates(run, attempt) if attempt is not None else {}
        for e in stored:
            if e.kind == EventKind.RUN_STARTED and isinstance(e.data.get("checkpoint_seq"), int):
                _forget_superseded(run, after_seq=e.data["checkpoint_seq"], before_seq=e.seq)
        metrics = [
            Metric(
                run=run,
                seq=e.seq,
                kind=METRIC_KINDS[e.kind],
                timestep=e.timestep,
                time=e.time,
                data=e.data,
                **{name: _number(e.data.get(name)) for name in CHARTED},
            )
            for e in stored
            if e.kind in METRIC_KINDS
        ]
        hints = [
            Hint(
                run=run,
                seq=e.seq,
                timestep=e.timestep,
                time=e.time,
                situation=str(e.data.get("situation", "")),
                situation_key=str(e.data.get("situation_key", ""))[:200],
                distribution=e.data.get("distribution") or {},
                teacher_action=e.data.get("teacher_action"),
                action_taken=str(e.data.get("action_taken", "")),
                feedback=e.data.get("feedback"),
                weight=_number(e.data.get("weight")),
                source=str(e.data.get("source", "")),
                plan=_plan(e.data.get("plan")),
            )
            for e in stored
            if e.kind == EventKind.HINT
        ]
        Metric.objects.bulk_create(metrics, ignore_conflicts=True)
        if metrics:
            seqs = [m.seq for m in metrics]
            rollups.metric_rollups_refresh(run_id=run.pk, first_seq=min(seqs), last_seq=max(seqs))
        Hint.objects.bulk_create(hints, ignore_conflicts=True)
        updates = {**claim, **_run_updates(run, stored)}
        updates["last_seq"] = max(run.last_seq, max(e.seq for e in stored))
        updates["heartbeat_at"] = timezone.now()
        for name, value in updates.items():
            setattr(run, name, value)
        run.save(update_fields=list(updates))
        notify.run_changed(run=run, events=[e.to_dict() for e in stored])


def _forget_superseded(run: Run, *, after_seq: int, before_seq: int) -> None:
    """Delete the run's stored events numbered after its checkpoint's and before its resume:
    the crashed attempt's, of frames the resumed attempt trains again (``EventKind.RUN_STARTED``),
    so that curves, bands, AUC and exports see each timestep once."""
    superseded = {"run": run, "seq__gt": after_seq, "seq__lt": before_seq}
    deleted, _ = Metric.objects.filter(**superseded).delete()
    Hint.objects.filter(**superseded).delete()
    if deleted:
        rollups.metric_rollups_forget(run_id=run.pk, first_seq=after_seq + 1, last_seq=before_seq - 1)
        logger.info("run %s: resumed from seq %s; forgot %s rows of the attempt before", run.pk, after_seq, deleted)


def run_frame_publish(*, run_id: int, event: Event) -> None:
    """Send a live frame to the run's group; frames are not stored."""
    notify.group_send(f"run-{run_id}", {"type": "run.frame", "event": event.to_dict()})


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _text(value: Any, limit: int) -> str | None:
    return str(value)[:limit] if value is not None else None


def _plan(value: Any) -> dict[str, Any] | None:
    """A hint's plan (``PlannedEnv.plan_view``) as stored: its four fields, strings cut to a
    length the page can show; None for anything else."""
    if not isinstance(value, dict):
        return None
    reached = value.get("reached")
    return {
        "state": _text(value.get("state"), 1000) or "",
        "subgoal": _text(value.get("subgoal"), 200),
        "reached": [str(r)[:200] for r in reached[:20]] if isinstance(reached, list) else [],
        "feedback": _text(value.get("feedback"), 2000),
    }
