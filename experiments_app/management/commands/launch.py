"""``python manage.py launch``: launch an experiment from the command line, validated by the
launch form and created by the same service as the web page; prints one run id a line.

    python manage.py launch --name N --team T --user U --env ENV --mode MODE \\
        --teacher-model M --seeds 0,1,2 [--set key=value ...]

Hyperparameters not given with --set take their defaults (``python -m workers train --help``).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from experiments_app import services
from experiments_app.forms import HP_PREFIX, LaunchForm
from experiments_app.hyperparameters import hyperparameter_defaults
from experiments_app.management.members import member_and_team


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """["gamma=0.9", ...] -> {"gamma": "0.9"}; the form parses the values like the page's."""
    defaults = hyperparameter_defaults()
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CommandError(f"--set {pair!r}: expected key=value")
        if key not in defaults:
            raise CommandError(f"--set {key}: not a hyperparameter (one of: {', '.join(defaults)})")
        values[key] = value.strip()
    return values


class Command(BaseCommand):
    help = "Launch an experiment: one queued run per seed, validated as the web form does."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--team", required=True, help="team name")
        parser.add_argument("--user", required=True, help="username of the owner, a member of the team")
        parser.add_argument("--env", required=True, help="level id, e.g. BabyAI-GoToRedBallNoDists-v0")
        parser.add_argument("--mode", required=True, help="ppo, teacher, unidirectional, bidirectional or oracle")
        parser.add_argument("--teacher-model", default="", help="needed by the teacher, unidirectional and bidirectional modes")
        parser.add_argument("--seeds", default="0", help='"0,1,2" or "0-4"')
        parser.add_argument("--description", default="")
        parser.add_argument("--tags", default="", help="comma-separated")
        parser.add_argument("--notes", default="")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a hyperparameter (repeatable)")

    def handle(self, *args: Any, **options: Any) -> None:
        user, team = member_and_team(username=options["user"], team_name=options["team"])
        hyperparameters = {**hyperparameter_defaults(), **parse_assignments(options["set"])}
        form = LaunchForm(
            {
                "name": options["name"], "team": team.pk, "description": options["description"],
                "env_id": options["env"], "mode": options["mode"], "teacher_model": options["teacher_model"],
                "seeds": options["seeds"], "tags": options["tags"], "notes": options["notes"],
                **{HP_PREFIX + key: value for key, value in hyperparameters.items()},
            },
            user=user,
        )
        if not form.is_valid():
            lines = [
                f"{name.removeprefix(HP_PREFIX) if name != '__all__' else 'error'}: {message}"
                for name, messages in form.errors.items()
                for message in messages
            ]
            raise CommandError("invalid experiment:\n  " + "\n  ".join(lines))
        try:
            experiment = services.experiment_create(owner=user, **form.experiment_arguments())
        except (ValidationError, PermissionDenied) as exc:
            raise CommandError("; ".join(getattr(exc, "messages", [str(exc)]))) from None
        for run in experiment.runs.order_by("seed"):
            self.stdout.write(str(run.pk))
        self.stderr.write(f"launched experiment {experiment.pk} ({experiment.name}): {experiment.runs.count()} run(s) queued")
