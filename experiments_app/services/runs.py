"""Experiments and their runs as users see them: launch, stop, resume, delete, notes."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from experiments_app.models import Experiment, Membership, Run, Team
from experiments_app.selectors import user_active_run_count, user_can_manage
from experiments_app.services import notify
from experiments_app.services.queueing import run_enqueue
from workers.config import Mode


def run_out_dir(*, run: Run) -> Path:
    """Where the run's checkpoints and summary live."""
    return Path(settings.RUNS_DIR) / f"run-{run.pk}"


@transaction.atomic
def experiment_create(
    *,
    owner: AbstractBaseUser,
    team: Team,
    name: str,
    env_id: str,
    mode: str,
    teacher_model: str,
    hyperparameters: dict[str, Any],
    seeds: Sequence[int],
    description: str = "",
    tags: Sequence[str] = (),
    notes: str = "",
    enqueue: bool = True,
) -> Experiment:
    """The experiment and one queued run per seed. Raises PermissionDenied unless ``owner`` is
    in ``team``, ValidationError for an invalid configuration or for more runs than the
    owner's cap allows (``_ensure_within_run_cap``). ``enqueue=False`` leaves the runs
    unqueued, and outside the cap: for runs trained elsewhere whose events are then recorded
    with ``run_record_events`` (``manage.py import_study``)."""
    if not Membership.objects.filter(team=team, user=owner).exists():
        raise PermissionDenied("you are not a member of this team")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValidationError({"seeds": "give at least one seed, each once"})
    experiment = Experiment(
        owner=owner,
        team=team,
        name=name,
        description=description,
        env_id=env_id,
        mode=mode,
        teacher_model=teacher_model if Mode(mode).uses_llm else "",
        hyperparameters=hyperparameters,
        tags=list(tags),
        notes=notes,
    )
    experiment.full_clean()
    if Mode(mode).uses_llm:
        _teacher_model_check(teacher_model)
    if enqueue:
        _ensure_within_run_cap(owner=owner, adding=len(seeds))
    experiment.save()
    total = int(hyperparameters["total_timesteps"])
    for seed in seeds:
        run = Run.objects.create(experiment=experiment, seed=seed, total_timesteps=total)
        if enqueue:
            run_enqueue(run=run)
    return experiment


def _ensure_within_run_cap(*, owner: AbstractBaseUser, adding: int) -> None:
    """Raise ValidationError (code "run_cap") if queuing ``adding`` more runs would give
    ``owner`` more than ``settings.MAX_ACTIVE_RUNS_PER_USER`` queued or running runs (0: no
    cap). Locks the owner's row first, so that two launches at once cannot both pass; call it
    inside the transaction that queues the runs."""
    cap = settings.MAX_ACTIVE_RUNS_PER_USER
    if not cap:
        return
    get_user_model().objects.select_for_update().filter(pk=owner.pk).exists()
    active = user_active_run_count(user=owner)
    if active + adding > cap:
        raise ValidationError(
            f"{owner.get_username()} has {active} run(s) queued or running, and one user may have at most {cap} "
            f"(BIDIR_MAX_ACTIVE_RUNS_PER_USER): {adding} more cannot be queued. Wait for some to finish, or stop some.",
            code="run_cap",
        )


def _teacher_model_check(teacher_model: str) -> None:
    """Refuse, before any run is queued, a teacher model its runs could not load: neither an
    installed model nor a file inside the model directories, missing, or not a GGUF file.
    (A file that fails only inside llama.cpp fails its runs at start, with llama.cpp's reason;
    an installed model assembled on first use is checked then.)"""
    from workers.teachers import TeacherError, available_models, check_gguf, resolve_model

    try:
        path = available_models().get(teacher_model) or resolve_model(teacher_model)
        if path.exists():
            check_gguf(path)
    except (TeacherError, OSError) as exc:
        raise ValidationError({"teacher_model": str(exc)}) from None


@transaction.atomic
def run_request_stop(*, run: Run) -> Run:
    """Ask the run to stop. A queued or interrupted run is cancelled at once; a running one
    stops at its next rollout boundary (it reads ``stop_requested``) and saves a checkpoint."""
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.is_final:
        return run
    run.stop_requested = True
    fields = ["stop_requested"]
    if run.status in (Run.Status.QUEUED, Run.Status.INTERRUPTED):
        run.status = Run.Status.CANCELLED
        run.finished_at = timezone.now()
        fields += ["status", "finished_at"]
    run.save(update_fields=fields)
    notify.run_changed(run=run)
    return run


def _ensure_can_manage(*, user: AbstractBaseUser, experiment: Experiment) -> None:
    if not user_can_manage(user=user, experiment=experiment):
        raise PermissionDenied("only the experiment's owner or a team admin may do this")


def run_stop(*, user: AbstractBaseUser, run: Run) -> Run:
    """``run_request_stop`` on behalf of ``user``. Raises PermissionDenied unless the user owns
    the run's experiment or is an admin of its team."""
    _ensure_can_manage(user=user, experiment=run.experiment)
    return run_request_stop(run=run)


def experiment_stop(*, user: AbstractBaseUser, experiment: Experiment) -> list[Run]:
    """Stop every run of the experiment that is not final; same permission as ``run_stop``."""
    _ensure_can_manage(user=user, experiment=experiment)
    with transaction.atomic():
        return [run_request_stop(run=run) for run in experiment.runs.exclude(status__in=Run.FINAL_STATUSES)]


def _delete_outputs_after_commit(runs: Sequence[Run]) -> None:
    dirs = [run_out_dir(run=run) for run in runs]
    transaction.on_commit(lambda: [shutil.rmtree(d, ignore_errors=True) for d in dirs])


@transaction.atomic
def run_delete(*, user: AbstractBaseUser, run: Run) -> None:
    """Delete the run, its metrics, hints and checkpoint. Raises PermissionDenied as
    ``run_stop``; ValidationError while it is queued or running (a worker would go on writing
    to it): stop it first."""
    _ensure_can_manage(user=user, experiment=run.experiment)
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.status in Run.ACTIVE_STATUSES:
        raise ValidationError(f"a {run.status} run cannot be deleted: stop it first")
    _delete_outputs_after_commit([run])
    run.delete()


@transaction.atomic
def experiment_delete(*, user: AbstractBaseUser, experiment: Experiment) -> None:
    """Delete the experiment and all its runs; the same rules as ``run_delete``, for every run."""
    _ensure_can_manage(user=user, experiment=experiment)
    runs = list(Run.objects.select_for_update().filter(experiment=experiment))
    active = [run for run in runs if run.status in Run.ACTIVE_STATUSES]
    if active:
        raise ValidationError(f"{len(active)} run(s) are queued or running: stop them first")
    _delete_outputs_after_commit(runs)
    experiment.delete()


@transaction.atomic
def experiment_update_notes(*, user: AbstractBaseUser, experiment: Experiment, notes: str, tags: Sequence[str]) -> Experiment:
    """Set the experiment's notes and tags, its only editable fields. Any member of its team
    may; others get PermissionDenied. ValidationError for tags that are not strings."""
    if not Membership.objects.filter(team_id=experiment.team_id, user=user).exists():
        raise PermissionDenied("you are not a member of this experiment's team")
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    experiment.notes = notes
    experiment.tags = list(tags)
    experiment.full_clean()
    experiment.save(update_fields=["notes", "tags"])
    return experiment


@transaction.atomic
def run_resume(*, user: AbstractBaseUser, run: Run) -> Run:
    """Queue an interrupted or failed run again; the task continues from its checkpoint if it
    has one. A stop asked for before the run was interrupted (its worker died while it was
    stopping) is withdrawn: Resume asks it to run, and ``run_claim`` takes no run that is to
    stop. Raises PermissionDenied as ``run_stop``; ValidationError for a run in any other
    state, or one its owner's cap has no room for (``_ensure_within_run_cap``)."""
    _ensure_can_manage(user=user, experiment=run.experiment)
    owner = run.experiment.owner
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.status not in (Run.Status.INTERRUPTED, Run.Status.FAILED):
        raise ValidationError(f"a {run.status} run cannot be resumed")
    _ensure_within_run_cap(owner=owner, adding=1)
    run.status = Run.Status.QUEUED
    run.error = ""
    run.finished_at = None
    run.stop_requested = False
    run.save(update_fields=["status", "error", "finished_at", "stop_requested"])
    run_enqueue(run=run)
    notify.run_changed(run=run)
    return run
