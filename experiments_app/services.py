"""Writes. Keyword-only ``<entity>_<verb>`` functions; each runs in one transaction and
notifies the channel layer only after its transaction commits (write first, then notify), so
a client that back-fills from the database never misses what it was told about."""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from experiments_app import broker, rollups
from experiments_app.models import Experiment, Hint, Membership, Metric, MetricRollup, Run, Team
from experiments_app.selectors import run_state, user_active_run_count, user_can_manage, user_is_team_admin
from workers.config import Mode
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


# --- teams and users ------------------------------------------------------------------------


@transaction.atomic
def team_create(*, user: AbstractBaseUser, name: str) -> Team:
    """A new team named ``name``, with ``user`` as its admin. ValidationError on ``name`` if it
    is blank, too long, or another team's name in any letter case ("Lab" beside "lab" would be
    told apart by no one)."""
    if Team.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": f'the name "{name}" is taken: choose another'})
    Team(name=name).full_clean()
    team, created = Team.objects.get_or_create(name=name)
    if not created:  # created meanwhile by someone else
        raise ValidationError({"name": f'the name "{name}" is taken: choose another'})
    team_member_add(team=team, user=user, role=Membership.Role.ADMIN)
    return team


@transaction.atomic
def team_member_add(
    *, team: Team, user: AbstractBaseUser, role: str = Membership.Role.MEMBER, by: AbstractBaseUser | None = None
) -> Membership:
    """Put ``user`` in ``team`` as ``role``. ``by`` is who asks (the web app): PermissionDenied
    unless they are an admin of the team; None for the server itself (``make user``, scripts).
    ValidationError if ``user`` is already a member or ``role`` is no role."""
    _team_lock(team=team, admin=by)
    if Membership.objects.filter(team=team, user=user).exists():
        raise ValidationError(f"{user.get_username()} is already a member of {team.name}")
    membership = Membership(team=team, user=user, role=role)
    membership.full_clean(validate_constraints=False)
    membership.save()
    return membership


@transaction.atomic
def team_member_set_role(*, by: AbstractBaseUser, team: Team, user: AbstractBaseUser, role: str) -> Membership:
    """Make ``user``, a member of ``team``, an admin or a plain member. PermissionDenied unless
    ``by`` is an admin of the team; ValidationError for a user not in it, a role that is no
    role, or taking the team's last admin away (no one could manage its members any more)."""
    _team_lock(team=team, admin=by)
    membership = Membership.objects.filter(team=team, user=user).first()
    if membership is None:
        raise ValidationError(f"{user.get_username()} is not a member of {team.name}")
    membership.role = role
    membership.full_clean(validate_constraints=False)
    if role != Membership.Role.ADMIN:
        _last_admin_check(team=team, leaving=user, by=by, why="step down")
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def team_member_remove(*, by: AbstractBaseUser, team: Team, user: AbstractBaseUser) -> bool:
    """Take ``user`` out of ``team``: an admin of the team removes anyone, any member themselves
    (leaving it); PermissionDenied otherwise. ValidationError if the team's last admin would
    go while other members stay, or its last member would go while it still has experiments
    (no one could reach them). The last member leaving a team without experiments deletes
    the team; returns whether it did."""
    _team_lock(team=team, admin=None if by.pk == user.pk else by)
    membership = Membership.objects.filter(team=team, user=user).first()
    if membership is None:
        raise ValidationError(f"{user.get_username()} is not a member of {team.name}")
    if not Membership.objects.filter(team=team).exclude(pk=membership.pk).exists():
        experiments = Experiment.objects.filter(team=team).count()
        if experiments:
            raise ValidationError(
                f"{_who(user, by)} the last member of {team.name}, which has {experiments} experiment(s): delete them "
                "first, or add a member and make them admin to hand the team over"
            )
        team.delete()
        return True
    if membership.role == Membership.Role.ADMIN:
        _last_admin_check(team=team, leaving=user, by=by, why="leave")
    membership.delete()
    return False


def _team_lock(*, team: Team, admin: AbstractBaseUser | None) -> None:
    """Lock the team's row, so that changes to its members happen one at a time (the last
    admin checks stay true), and, given ``admin``, check that they are an admin of it."""
    Team.objects.select_for_update().filter(pk=team.pk).first()
    if admin is not None and not user_is_team_admin(user=admin, team_id=team.pk):
        raise PermissionDenied("only an admin of this team may change its members")


def _last_admin_check(*, team: Team, leaving: AbstractBaseUser, by: AbstractBaseUser, why: str) -> None:
    """ValidationError if ``leaving`` is the team's only admin: a team keeps one."""
    others = Membership.objects.filter(team=team, role=Membership.Role.ADMIN).exclude(user=leaving)
    if not others.exists():
        raise ValidationError(
            f"{_who(leaving, by)} the only admin of {team.name} and cannot {why}: make another member admin first"
        )


def _who(user: AbstractBaseUser, by: AbstractBaseUser) -> str:
    return "You are" if user.pk == by.pk else f"{user.get_username()} is"


@transaction.atomic
def user_create_with_team(*, username: str, password: str, team_name: str, admin: bool = True) -> AbstractBaseUser:
    """A user who can log in, in the team ``team_name`` (created if new). Raises ValidationError
    if the username is taken or the password fails the validators."""
    from django.contrib.auth.password_validation import validate_password

    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise ValidationError(f"user {username!r} already exists")
    user = User(username=username)
    validate_password(password, user)
    user.set_password(password)
    user.full_clean()
    user.save()
    team, _ = Team.objects.get_or_create(name=team_name)
    team_member_add(team=team, user=user, role=Membership.Role.ADMIN if admin else Membership.Role.MEMBER)
    return user


# --- experiments and runs -------------------------------------------------------------------


def run_out_dir(*, run: Run) -> Path:
    """Where the run's checkpoints and summary live."""
    return Path(settings.RUNS_DIR) / f"run-{run.pk}"


NO_BROKER = (
    "no broker to queue the run on: REDIS_URL is unset and no `make run` of this checkout is running on this "
    "database, so no worker would ever see the run. Start `make run` (or set REDIS_URL to your workers' Redis) "
    "and launch again."
)
BROKER_DOWN = (
    "the broker (Redis) is not answering, so nothing was queued: start it again (`make run` starts one; "
    "/healthz shows what is down) and retry."
)


def run_enqueue(*, run: Run) -> None:
    """Queue the run's training task once the current transaction commits (a worker must find
    the run when it starts). Raises ValidationError unless a broker is known (NO_BROKER: the run
    would stay queued forever) and answers (BROKER_DOWN). A task the broker refuses after the
    commit (it went down meanwhile) leaves the run queued with no task: ``run_requeue_lost``
    sends it again once the broker answers."""
    if not broker.known():
        raise ValidationError(NO_BROKER)
    if not broker.answers():
        raise ValidationError(BROKER_DOWN, code="broker_down")
    task_id = str(uuid.uuid4())
    now = timezone.now()
    Run.objects.filter(pk=run.pk).update(task_id=task_id, queued_at=now)
    run.task_id, run.queued_at = task_id, now
    transaction.on_commit(lambda: _send_task(run.pk, task_id))


def _send_task(run_id: int, task_id: str) -> None:
    """Send the task; if the broker refuses it, mark the run as waiting with no task."""
    if broker.send_training_task(run_id=run_id, task_id=task_id):
        return
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id, task_id=task_id, status=Run.Status.QUEUED).first()
        if run is not None:
            run.task_id = ""
            run.save(update_fields=["task_id"])
            _notify_after_commit(run)


def run_requeue_lost(*, now: datetime | None = None) -> list[int]:
    """Send again, and return the ids of, the queued runs whose task is gone: never sent (the
    broker refused it), or sent more than LOST_TASK_AFTER_S ago and no longer held by the
    broker (it lost its data). Nothing while the broker does not answer. Each run gets a new
    task id, taken with a conditional update, so that processes sweeping at once send it once;
    a task that was not lost after all is refused by ``run_claim`` when the copy arrives."""
    now = now or timezone.now()
    queued = Run.objects.filter(status=Run.Status.QUEUED, stop_requested=False)
    never_sent = Q(task_id="", queued_at__isnull=False)  # (runs created unqueued have no queued_at)
    old = Q(queued_at__lt=now - timedelta(seconds=settings.LOST_TASK_AFTER_S))
    candidates = list(queued.filter(never_sent | old).values_list("pk", "task_id")[:LOST_TASKS_PER_SWEEP])
    if not candidates or not broker.known() or not broker.answers():
        return []
    held = broker.held_task_ids() if any(task_id for _, task_id in candidates) else set()
    lost = [(pk, task_id) for pk, task_id in candidates if not task_id or (held is not None and task_id not in held)]
    requeued = []
    for pk, task_id in lost:
        new_id = str(uuid.uuid4())
        if queued.filter(pk=pk, task_id=task_id).update(task_id=new_id, queued_at=now):
            if broker.send_training_task(run_id=pk, task_id=new_id):
                requeued.append(pk)
            else:
                queued.filter(pk=pk, task_id=new_id).update(task_id="")
                break  # the broker is down again: the next sweep tries
    for run in Run.objects.filter(pk__in=requeued):
        _notify_after_commit(run)
    return requeued


LOST_TASKS_PER_SWEEP = 100


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
    _notify_after_commit(run)
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
    _notify_after_commit(run)
    return run


def _stale_before(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.STALE_AFTER_S)


@transaction.atomic
def run_claim(*, run_id: int, worker_host: str, task_id: str) -> Run | None:
    """Mark the run running on this worker as a new attempt and return it, or return None when
    it must not run here: already running elsewhere with a fresh heartbeat (a redelivered task),
    finished, cancelled, or gone. Atomic, so two deliveries of one task never both win. The
    returned run's ``attempt`` is what the worker passes to ``run_record_events`` and
    ``run_heartbeat``: an earlier attempt that is still alive (a frozen worker that wakes up)
    can no longer write."""
    now = timezone.now()
    claimable = (
        Q(status__in=[Run.Status.QUEUED, Run.Status.INTERRUPTED])
        | Q(status=Run.Status.RUNNING, heartbeat_at__lt=_stale_before(now))
    )
    won = (
        Run.objects.filter(claimable, pk=run_id, stop_requested=False)
        .update(
            status=Run.Status.RUNNING,
            worker_host=worker_host[:200],
            task_id=task_id,
            attempt=F("attempt") + 1,
            heartbeat_at=now,
            error="",
        )
    )
    if not won:
        return None
    Run.objects.filter(pk=run_id, started_at__isnull=True).update(started_at=now)
    run = Run.objects.select_related("experiment").get(pk=run_id)
    _notify_after_commit(run)
    return run


@transaction.atomic
def run_discard_events(*, run: Run) -> None:
    """Forget what an attempt without a checkpoint recorded, before training starts over."""
    Metric.objects.filter(run=run).delete()
    MetricRollup.objects.filter(run=run).delete()
    Hint.objects.filter(run=run).delete()
    Run.objects.filter(pk=run.pk).update(
        last_seq=0, timesteps=0, fps=None, eta_s=None, teacher_fault="", summary=None, final_eval_return=None
    )
    run.last_seq = 0


class RunClaimLost(Exception):
    """The run is no longer the writer's attempt: it was queued again, claimed by a newer
    attempt, made final or deleted while the writer's worker was frozen."""


def _claim_updates(run: Run, attempt: int) -> dict[str, Any]:
    """The fields that keep ``run`` with ``attempt`` (on a row the caller has locked), or
    RunClaimLost. A run marked interrupted for a stale heartbeat and not queued again since is
    taken back: its worker was frozen, not dead, and goes on where it was."""
    if run.attempt != attempt or run.status not in (Run.Status.RUNNING, Run.Status.INTERRUPTED):
        raise RunClaimLost(f"run {run.pk} is not held by attempt {attempt} any more (attempt {run.attempt}, {run.status})")
    if run.status == Run.Status.INTERRUPTED:
        logger.warning("run %s: its worker is alive after all; running again", run.pk)
        return {"status": Run.Status.RUNNING, "error": ""}
    return {}


def run_heartbeat(*, run_id: int, attempt: int | None) -> bool:
    """Refresh the heartbeat of ``attempt`` (None: of whichever attempt runs it); False if the
    run is no longer that attempt's to train (see ``RunClaimLost``). One UPDATE while the run
    is running as it should be."""
    now = timezone.now()
    running = Run.objects.filter(pk=run_id, status=Run.Status.RUNNING)
    if running.filter(**({} if attempt is None else {"attempt": attempt})).update(heartbeat_at=now):
        return True
    if attempt is None:
        return False
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            return False
        try:
            updates = {**_claim_updates(run, attempt), "heartbeat_at": now}
        except RunClaimLost:
            return False
        for name, value in updates.items():
            setattr(run, name, value)
        run.save(update_fields=list(updates))
        _notify_after_commit(run)
    return True


@transaction.atomic
def run_fail(*, run_id: int, error: str) -> None:
    """Record a failure the engine could not report itself; a run already final keeps its status."""
    run = Run.objects.select_for_update().get(pk=run_id)
    if run.is_final:
        return
    run.status = Run.Status.FAILED
    run.error = error
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
    _notify_after_commit(run)


def run_mark_interrupted(*, worker_host: str | None = None, now: datetime | None = None) -> list[int]:
    """Mark interrupted (resumable) and return the ids of the runs that lost their worker:
    running runs whose heartbeat is older than STALE_AFTER_S, or, given ``worker_host``, every
    running run of that worker (which has just started, so it runs none of them)."""
    now = now or timezone.now()
    lost = Q(worker_host=worker_host) if worker_host else Q(heartbeat_at__lt=_stale_before(now))
    # Every process sweeps every few seconds: look before taking any lock.
    if not Run.objects.filter(lost, status=Run.Status.RUNNING).exists():
        return []
    with transaction.atomic():
        ids = list(Run.objects.select_for_update().filter(lost, status=Run.Status.RUNNING).values_list("pk", flat=True))
        Run.objects.filter(pk__in=ids).update(status=Run.Status.INTERRUPTED, error="the worker running it stopped")
        for run in Run.objects.filter(pk__in=ids):
            _notify_after_commit(run)
    return ids


# --- events ---------------------------------------------------------------------------------


def _run_updates(run: Run, events: Sequence[Event]) -> dict[str, Any]:
    """Run fields that these events change, applied in seq order."""
    updates: dict[str, Any] = {}
    for event in events:
        data = event.data
        if event.kind == EventKind.RUN_STARTED:
            updates["total_timesteps"] = int(data.get("config", {}).get("total_timesteps") or run.total_timesteps)
            if isinstance(data.get("start_timestep"), int):
                updates["timesteps"] = data["start_timestep"]
        elif event.kind == EventKind.PROGRESS:
            updates.update(
                timesteps=int(data["timesteps"]),
                total_timesteps=int(data["total_timesteps"]),
                fps=data.get("fps"),
                eta_s=data.get("eta_s"),
            )
        elif event.kind == EventKind.CHECKPOINT:
            updates["checkpoint_path"] = str(data["path"])[:500]
        elif event.kind == EventKind.TEACHER_FAULT:
            updates["teacher_fault"] = str(data.get("error", ""))
        elif event.kind == EventKind.RUN_FINISHED:
            if data.get("status") == "succeeded":
                status = Run.Status.SUCCEEDED
            else:
                # "stopped": by the user (cancelled) or by a worker shutting down (resumable).
                status = Run.Status.CANCELLED if run.stop_requested else Run.Status.INTERRUPTED
            summary = data.get("summary") or {}
            updates.update(
                status=status, summary=summary, eta_s=None, final_eval_return=_number(summary.get("final_eval_return"))
            )
            if "timesteps" in summary:
                updates["timesteps"] = int(summary["timesteps"])
            if status != Run.Status.INTERRUPTED:
                updates["finished_at"] = timezone.now()
        elif event.kind == EventKind.RUN_FAILED:
            error = str(data.get("error", "failed"))
            trace = data.get("traceback")
            updates.update(status=Run.Status.FAILED, error=f"{error}\n\n{trace}" if trace else error, finished_at=timezone.now(), eta_s=None)
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
        message = {"type": "run.update", "events": [e.to_dict() for e in stored], "run": run_state(run=run)}
        transaction.on_commit(lambda: _group_send(run.group_name, message))


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
    _group_send(f"run-{run_id}", {"type": "run.frame", "event": event.to_dict()})


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _notify_after_commit(run: Run) -> None:
    message = {"type": "run.update", "events": [], "run": run_state(run=run)}
    transaction.on_commit(lambda: _group_send(run.group_name, message))


_sender = threading.local()


def _thread_event_loop() -> asyncio.AbstractEventLoop:
    """This thread's own event loop, kept for its lifetime. channels_redis pools connections
    per event loop; async_to_sync outside an async context makes a new loop, hence a new Redis
    connection, per message: 6.5 ms a message against 0.6 ms on a kept loop (measured), which
    matters for ~10 frames a second from the training thread."""
    loop = getattr(_sender, "loop", None)
    if loop is None or loop.is_closed():
        loop = _sender.loop = asyncio.new_event_loop()
    return loop


GROUP_SEND_TIMEOUT_S = 2.0
GROUP_SEND_PAUSE_S = 5.0
_group_send_paused_until = 0.0
"""time.monotonic() until which this process sends nothing to the channel layer."""


def _group_send(group: str, message: dict[str, Any]) -> None:
    """Best effort: the data is already stored, and a page that missed a message back-fills it
    (it asks every few seconds, and on reconnect), so a channel-layer outage must neither fail
    nor stall training. A send that fails, or hangs longer than GROUP_SEND_TIMEOUT_S (a Redis
    that stopped answering would otherwise block the training thread for as long as it does),
    pauses sending from this process for GROUP_SEND_PAUSE_S: messages meanwhile are dropped."""
    global _group_send_paused_until
    layer = get_channel_layer()
    if layer is None or time.monotonic() < _group_send_paused_until:
        return
    try:
        if isinstance(layer, RedisChannelLayer):
            send = asyncio.wait_for(layer.group_send(group, message), GROUP_SEND_TIMEOUT_S)
            _thread_event_loop().run_until_complete(send)
        else:
            # The in-memory layer lives on the consumers' loop: send from there.
            async_to_sync(layer.group_send)(group, message)
    except Exception:
        _group_send_paused_until = time.monotonic() + GROUP_SEND_PAUSE_S
        logger.warning("channel layer send to %s failed: live updates paused for %g s", group, GROUP_SEND_PAUSE_S,
                       exc_info=True)
