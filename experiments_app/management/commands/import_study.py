"""``python manage.py import_study DIR --team T --owner U``: load a study's runs (``python -m
study run``) into the dashboard, so the compare page shows them.

One experiment per (level, mode), named ``<prefix>: <mode> on <level>`` (prefix ``study
<spec name>`` unless ``--prefix`` says otherwise) and tagged ``study``, with one run per seed;
it is created only once every seed of that (level, mode) is done, because an experiment's runs
are fixed when it is created. Each run's events are replayed, as the run finally happened
(``study.rundir.timeline``) and without frames (never stored), through
``services.run_record_events``: what ``DatabaseSink`` writes a live run's events with. The runs
are never queued.

Idempotent: an existing experiment of the same team and name is reused, a run whose events
are all stored is skipped, and the store ignores an event it already holds (per run and
sequence number), so a second import adds nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from experiments_app import services
from experiments_app.management.members import member_and_team
from experiments_app.models import Experiment, Team
from experiments_app.studies import study_experiment_arguments, study_experiment_conflict, study_experiment_name
from study.rundir import RunState, read_events, run_state, timeline
from study.runner import SPEC_FILE
from study.spec import Level, RunKey, StudySpec
from workers.events import EventKind

REPLAY_BATCH = 500
"""Events per write while replaying (one transaction each)."""


class Command(BaseCommand):
    help = "Import a study's finished runs as experiments (one per level and mode), idempotently."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path, help="the study's output directory, e.g. var/study/full")
        parser.add_argument("--team", required=True, help="team name")
        parser.add_argument("--owner", required=True, help="username of the owner, a member of the team")
        parser.add_argument("--prefix", help='experiment name prefix (default "study <spec name>")')

    def handle(self, *args: Any, **options: Any) -> None:
        directory: Path = options["directory"]
        if not (directory / SPEC_FILE).exists():
            raise CommandError(f"{directory} is not a study's output directory (no {SPEC_FILE})")
        spec = StudySpec.from_dict(json.loads((directory / SPEC_FILE).read_text()))
        owner, team = member_and_team(username=options["owner"], team_name=options["team"])
        for level in spec.levels:
            for mode in spec.modes_of(level):
                name = study_experiment_name(spec=spec, mode=mode, env_id=level.env_id, prefix=options["prefix"])
                self._import_cell(directory, spec, level, mode, owner, team, name)

    def _import_cell(self, directory: Path, spec: StudySpec, level: Level, mode: str, owner, team: Team, name: str) -> None:
        dirs = {seed: RunKey(level, mode, seed).directory(directory) for seed in spec.seeds}
        undone = [seed for seed, d in dirs.items() if run_state(d) != RunState.DONE]
        if undone:
            self.stderr.write(f"skipped {name}: seeds {undone} not done yet")
            return
        experiment = Experiment.objects.filter(team=team, name=name).first()
        arguments = study_experiment_arguments(spec=spec, level=level, mode=mode, seeds=spec.seeds)
        if experiment is None:
            try:
                experiment = services.experiment_create(
                    owner=owner, team=team, name=name, description=f"{spec.description} Imported from {directory}.",
                    enqueue=False, **arguments,
                )
            except (ValidationError, PermissionDenied) as exc:
                raise CommandError(f"{name}: " + "; ".join(getattr(exc, "messages", [str(exc)]))) from None
        elif conflict := study_experiment_conflict(experiment=experiment, arguments=arguments):
            raise CommandError(f"{name}: {conflict}")
        replayed = 0
        for run in experiment.runs.order_by("seed"):
            if run.seed not in dirs:
                raise CommandError(f"{name}: run of seed {run.seed} is not in the study")
            events = [e for e in timeline(read_events(dirs[run.seed])) if e.kind != EventKind.FRAME]
            if events and run.last_seq >= events[-1].seq:
                continue  # every event of this run is stored
            # The write of live runs' DatabaseSink, in bigger batches and on this thread only.
            for start in range(0, len(events), REPLAY_BATCH):
                services.run_record_events(run_id=run.pk, events=events[start : start + REPLAY_BATCH])
            replayed += 1
        self.stdout.write(f"{experiment.pk}\t{name}\t{replayed} run(s) imported")
