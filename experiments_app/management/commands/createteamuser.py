"""``python manage.py createteamuser``: a user who can log in, as admin of a team (created if
new). Asks for whatever is not given; --password-stdin reads the password from stdin."""

from __future__ import annotations

import getpass
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from experiments_app.services import user_create_with_team


class Command(BaseCommand):
    help = "Create a user who can log in to the dashboard, in a team (created if new)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username", nargs="?")
        parser.add_argument("--team", help="team name (default: the username's team)")
        parser.add_argument("--member", action="store_true", help="plain member instead of team admin")
        parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    def handle(self, *args, **options) -> None:
        interactive = options["username"] is None
        username = options["username"] or input("Username: ").strip()
        if not username:
            raise CommandError("a username is required")
        team = options["team"] or (input(f"Team [{username}'s team]: ").strip() if interactive else "")
        team = team or f"{username}'s team"
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Password (again): "):
                raise CommandError("the passwords differ")
        try:
            user_create_with_team(username=username, password=password, team_name=team, admin=not options["member"])
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(self.style.SUCCESS(f"created {username} in team {team!r}; log in at /accounts/login/"))
