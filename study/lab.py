"""Runs a study on a lab's Celery workers (``python -m study run SPEC --backend celery --team T
--owner U``): the runs, output directory, report and exit codes of ``study.runner``, each run
trained by whichever of the dashboard's workers takes it.

Contract:

* the runs are launched the dashboard's own way: one experiment per (level, mode) of
  ``spec.runs()``, named and tagged as ``manage.py import_study`` names them
  (``experiments_app.studies``), made by ``services.experiment_create`` in the team and owned by
  the owner, with one queued run per seed whose directory is not done yet;
* the owner's cap of queued and running runs (BIDIR_MAX_ACTIVE_RUNS_PER_USER) is waited for, not
  failed on: an experiment's runs are fixed when it is created, so each (level, mode)'s
  experiment is created, in the order of ``spec.runs()``, once the cap has room for all its
  seeds (``experiment_create`` refuses it with code "run_cap" until then, whatever holds the
  room: this study's runs or the owner's others); a (level, mode) with more seeds than the cap
  is refused before anything is created, as it could never start;
* resumable: run again, it finds its experiments by team and name and creates none twice; a run
  that failed, or was interrupted (its worker died), is resumed (``services.run_resume``: from
  its checkpoint where its new worker can read it), at most ``RESUMES[status]`` times per
  invocation, then reported as failed; a run cancelled in the dashboard is final: failed;
* a succeeded run is written from the database into its directory (``materialise``), which the
  local runner then counts done and ``study.data`` reads as a local run's; a run whose directory
  is done already is neither launched nor written again;
* it waits until every run is done or failed, looking at the database every ``POLL_S`` and
  drawing the local runner's progress bar (frames over all runs, from the runs' ``timesteps``);
  Ctrl-C (or SIGTERM, or ``timeout_s``) stops the waiting only: the runs go on on the workers,
  and the next invocation collects them;
* each invocation appends its line to ``invocations.jsonl`` as the local runner does; its
  ``workers`` are the Celery workers that trained the study's runs (``worker_hosts`` names
  them), and it names no ``machine``: the runs ran on the workers' own.

Importing this module sets Django up (``DJANGO_SETTINGS_MODULE`` defaults to
``bidir_site.settings``; DATABASE_URL and REDIS_URL name the dashboard's database and broker,
as for ``manage.py``); ``python -m study`` imports it only for ``--backend celery``, so the local
runner stays Django-free.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

import django
from tqdm import tqdm

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bidir_site.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.base_user import AbstractBaseUser  # noqa: E402
from django.core.exceptions import PermissionDenied, ValidationError  # noqa: E402
from django.core.management.base import CommandError  # noqa: E402
from django.db import DatabaseError, connection  # noqa: E402

from experiments_app import services  # noqa: E402
from experiments_app.hyperparameters import run_config  # noqa: E402
from experiments_app.management.members import member_and_team  # noqa: E402
from experiments_app.models import Experiment, Run, Team  # noqa: E402
from experiments_app.selectors import run_stored_events  # noqa: E402
from experiments_app.studies import (  # noqa: E402
    study_experiment_arguments,
    study_experiment_conflict,
    study_experiment_name,
)
from study.rundir import SUMMARY_FILE, RunState, run_state  # noqa: E402
from study.runner import (  # noqa: E402
    LOCK_FILE,
    MAX_POOL_RESTARTS,
    Outcome,
    StudyError,
    done_line,
    locked,
    log_invocation,
    prepare,
    progress_bar,
)
from study.spec import RunKey, StudySpec  # noqa: E402
from workers.__main__ import EVENTS_FILE  # noqa: E402
from workers.events import Event, EventKind, JsonlSink  # noqa: E402
from workers.levels import action_subset  # noqa: E402

POLL_S = 2.0
"""Seconds between two looks at the database."""
RESUMES = {Run.Status.FAILED: 1, Run.Status.INTERRUPTED: MAX_POOL_RESTARTS}
"""How many times one invocation resumes a run that ended so: a failure once (a second one is
likely the run's own), an interruption (its worker died) as often as the local runner restarts
its pool."""
WAIT_CODES = ("run_cap", "broker_down")
"""Refusals of a launch or resume that pass by themselves: the cap is full, the broker is down."""


def run_lab(
    spec: StudySpec,
    out: Path,
    *,
    team: str,
    owner: str,
    command: str | None = None,
    timeout_s: float | None = None,
    show_progress: bool = True,
    poll_s: float = POLL_S,
) -> Outcome:
    """Run every run of ``spec`` not yet done in ``out`` on the dashboard's workers, as experiments
    of the team named ``team`` owned by the user ``owner`` (a member of it), and wait for them
    (at most ``timeout_s``). StudyError for a spec, team or experiment that cannot be used."""
    prepare(spec, out)
    with locked(out / LOCK_FILE):
        try:
            user, team_row = member_and_team(username=owner, team_name=team)
        except CommandError as exc:
            raise StudyError(str(exc)) from None
        started = time.time()
        study = _Study(spec, out, user, team_row)
        outcome = _wait(study, timeout_s, show_progress, poll_s)
        hosts = study.worker_hosts()
        log_invocation(out, outcome, started=started, runs_total=len(spec.runs()), command=command, backend="celery",
                       workers=len(hosts), worker_hosts=hosts, machine=None)
        return outcome


def _wait(study: _Study, timeout_s: float | None, show_progress: bool, poll_s: float) -> Outcome:
    """Poll until no run is left to wait for, Ctrl-C/SIGTERM, or ``timeout_s``."""
    started = time.monotonic()
    say = partial(tqdm.write, file=sys.stderr)
    # A flag, not an exception: a signal must not cut a write short (a run half materialised).
    signals: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _: signals.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    bar = None
    try:
        outcome, frames = study.poll(say)
        bar = progress_bar(study.spec, frames, show_progress)
        while outcome.stopped:
            time.sleep(poll_s)
            if signals:
                break
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                say(f"timed out after {timeout_s:g} s")
                break
            try:
                outcome, frames = study.poll(say)
            except DatabaseError as exc:  # a database restarting: the runs go on, look again
                say(f"database error, trying again: {exc}")
                connection.close()
                continue
            bar.n = frames  # absolute: a run that starts over goes back
            bar.set_postfix_str(f"runs {len(outcome.done)}/{len(study.spec.runs())} done, {len(outcome.failed)} failed")
        if outcome.stopped:
            say(f"stopped waiting: {len(outcome.stopped)} runs go on on the workers (or wait for room under the cap); "
                "run the same command again to collect them")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if bar is not None:
            bar.close()
    return outcome


class _Study:
    """One invocation's view of the study in the dashboard."""

    def __init__(self, spec: StudySpec, out: Path, owner: AbstractBaseUser, team: Team) -> None:
        self.spec, self.out, self.owner, self.team = spec, out, owner, team
        self.cells: dict[tuple[str, str], list[RunKey]] = {}
        for key in spec.runs():
            self.cells.setdefault((key.level.env_id, key.mode), []).append(key)
        # Before anything is launched: a cell whose seeds to run exceed the cap could never start.
        cap = settings.MAX_ACTIVE_RUNS_PER_USER
        for (env_id, mode), keys in self.cells.items():
            todo = [k for k in keys if run_state(k.directory(out)) != RunState.DONE]
            if cap and len(todo) > cap:
                raise StudyError(
                    f"{study_experiment_name(spec=spec, mode=mode, env_id=env_id)}: {len(todo)} seeds, more than the "
                    f"{cap} runs the owner may have queued or running (BIDIR_MAX_ACTIVE_RUNS_PER_USER): its experiment "
                    "could never be launched"
                )
        self.experiments: dict[tuple[str, str], Experiment] = {}
        self.resumes: Counter[tuple[int, str]] = Counter()
        self.waiting_to_launch: str | None = None

    def poll(self, say: Callable[[str], None]) -> tuple[Outcome, int]:
        """Look at every run once: launch the experiments the cap has room for, resume what
        failed or was interrupted, materialise what succeeded. Returns the outcome so far
        (``stopped``: the runs still to wait for) and the frames trained over all runs."""
        outcome, frames, room = Outcome(), 0, True
        for cell, keys in self.cells.items():
            todo = [k for k in keys if run_state(k.directory(self.out)) != RunState.DONE]
            outcome.done += [k.name for k in keys if k not in todo]
            frames += sum(k.timesteps for k in keys if k not in todo)
            if not todo:
                continue
            experiment = self._experiment(cell, todo, say, launch=room)
            if experiment is None:
                room = False  # in spec order: no later cell takes the room this one waits for
                outcome.stopped += [k.name for k in todo]
                continue
            runs = {run.seed: run for run in experiment.runs.all()}
            for key in todo:
                if key.seed not in runs:
                    outcome.failed[key.name] = f"{experiment.name!r} has no run of seed {key.seed} (deleted?)"
                    continue
                frames += self._settle(key, runs[key.seed], outcome, say)
        return outcome, frames

    def worker_hosts(self) -> list[str]:
        """The Celery workers (node names) that trained the study's runs, in any invocation."""
        names = [study_experiment_name(spec=self.spec, mode=mode, env_id=env_id) for env_id, mode in self.cells]
        runs = Run.objects.filter(experiment__team=self.team, experiment__name__in=names).exclude(worker_host="")
        return sorted(set(runs.values_list("worker_host", flat=True)))

    def _experiment(self, cell: tuple[str, str], todo: list[RunKey], say: Callable[[str], None], *,
                    launch: bool) -> Experiment | None:
        """The cell's experiment: found, or (``launch``) created for the seeds of ``todo`` when
        the cap has room; None while it has not."""
        if cell in self.experiments:
            return self.experiments[cell]
        level, mode = todo[0].level, todo[0].mode
        name = study_experiment_name(spec=self.spec, mode=mode, env_id=level.env_id)
        arguments = study_experiment_arguments(spec=self.spec, level=level, mode=mode, seeds=[k.seed for k in todo])
        experiment = Experiment.objects.filter(team=self.team, name=name).first()
        if experiment is not None:
            if conflict := study_experiment_conflict(experiment=experiment, arguments=arguments):
                raise StudyError(f"{name}: {conflict}")
        elif not launch:
            return None
        else:
            try:
                experiment = services.experiment_create(
                    owner=self.owner, team=self.team, name=name, **arguments,
                    description=f"{self.spec.description} Launched by python -m study --backend celery into {self.out}.",
                )
            except ValidationError as exc:
                if getattr(exc, "code", None) not in WAIT_CODES:
                    raise StudyError(f"{name}: " + "; ".join(exc.messages)) from None
                if self.waiting_to_launch != name:
                    say(f"waiting to launch {name}: {exc.messages[0]}")
                    self.waiting_to_launch = name
                return None
            except PermissionDenied as exc:
                raise StudyError(f"{name}: {exc}") from None
            say(f"launched {name}: experiment {experiment.pk}, {len(todo)} run(s) queued")
        self.experiments[cell] = experiment
        return experiment

    def _settle(self, key: RunKey, run: Run, outcome: Outcome, say: Callable[[str], None]) -> int:
        """Note where the run stands in ``outcome``, acting on it as the contract says; returns
        its frames trained."""
        if run.status == Run.Status.SUCCEEDED:
            materialise(run, key, self.out)
            outcome.done.append(key.name)
            say(done_line(key, run.summary))
            return key.timesteps
        if run.status == Run.Status.CANCELLED:
            outcome.failed[key.name] = "cancelled in the dashboard, which is final: delete its experiment to run it again"
        elif run.status in RESUMES and self.resumes[run.pk, run.status] >= RESUMES[run.status]:
            outcome.failed[key.name] = run.error or run.status
        elif run.status in RESUMES:
            self._resume(key, run, outcome, say)
        else:
            outcome.stopped.append(key.name)
        return run.timesteps

    def _resume(self, key: RunKey, run: Run, outcome: Outcome, say: Callable[[str], None]) -> None:
        why = f"{run.status}: {run.error.splitlines()[0] if run.error else 'no error recorded'}"
        try:
            services.run_resume(user=self.owner, run=run)
        except (ValidationError, PermissionDenied) as exc:
            if getattr(exc, "code", None) not in WAIT_CODES:
                outcome.failed[key.name] = f"{why}; not resumed: {'; '.join(getattr(exc, 'messages', [str(exc)]))}"
                return
        else:
            self.resumes[run.pk, run.status] += 1
            say(f"resumed {key.name} ({why})")
        outcome.stopped.append(key.name)


def materialise(run: Run, key: RunKey, out: Path) -> None:
    """Write the succeeded ``run`` into ``key``'s directory as the engine writes a run:
    ``events.jsonl`` through its JsonlSink, then ``summary.json`` (``Run.summary``), so that the
    directory is done only once its events are whole.

    The events are those the database stores (metrics, evaluations, progress, hints: the run as
    it finally happened, the store having dropped what a resume trained again), with the
    engine's numbers, between a ``run_started`` and the ``run_finished`` the run's ``last_seq``
    numbers. ``run_started`` takes number 1, that of every run's first event (a run with no
    checkpoint to resume from starts over, its stored events discarded), its config rebuilt
    from the experiment. The database keeps neither checkpoints nor when a teacher fault came,
    only its error (``Run.teacher_fault``, all the report reads): the fault is written last
    before ``run_finished``, in the highest number the stored events leave free."""
    experiment = run.experiment
    config = run_config(env_id=experiment.env_id, mode=experiment.mode, teacher_model=experiment.teacher_model,
                        seed=run.seed, hyperparameters=experiment.hyperparameters)
    stored = [Event.from_dict(raw) for raw in run_stored_events(run_id=run.pk)]
    first_time = run.started_at.timestamp() if run.started_at else stored[0].time
    last_time = run.finished_at.timestamp() if run.finished_at else stored[-1].time
    events = [
        Event(1, EventKind.RUN_STARTED, 0, first_time, {
            "config": config.to_dict(), "env_id": config.env_id, "mode": config.mode.value,
            "actions": list(action_subset(config.env_id)), "teacher": config.teacher, "resumed": False,
            "start_timestep": 0, "checkpoint_seq": None,
        }),
        *stored,
    ]
    if run.teacher_fault:
        taken = {e.seq for e in events}
        seq = run.last_seq - 1
        while seq in taken:
            seq -= 1
        before = max((e for e in events if e.seq < seq), key=lambda e: e.seq)
        fault = {"error": run.teacher_fault, "fallback": "student-only"}
        events.append(Event(seq, EventKind.TEACHER_FAULT, before.timestep, before.time, fault))
        events.sort(key=lambda e: e.seq)
    finished = {"status": "succeeded", "summary": run.summary}
    events.append(Event(run.last_seq, EventKind.RUN_FINISHED, int(run.summary["timesteps"]), last_time, finished))

    directory = key.directory(out)
    for stale in (EVENTS_FILE, SUMMARY_FILE):  # of a local attempt, or of a materialising cut short
        (directory / stale).unlink(missing_ok=True)
    sink = JsonlSink(directory / EVENTS_FILE)
    for event in events:
        sink.emit(event)
    sink.close()
    partial_summary = directory / f"{SUMMARY_FILE}.partial"
    partial_summary.write_text(json.dumps(run.summary, indent=2))
    partial_summary.replace(directory / SUMMARY_FILE)
