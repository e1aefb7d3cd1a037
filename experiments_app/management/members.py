"""What the management commands share."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.management.base import CommandError

from experiments_app.models import Team
from experiments_app.selectors import team_list, user_get


def member_and_team(*, username: str, team_name: str) -> tuple[AbstractBaseUser, Team]:
    """The user and their team of that name; CommandError saying which one is missing."""
    user = user_get(username=username)
    if user is None:
        raise CommandError(f"no user {username!r}")
    team = team_list(user=user).filter(name=team_name).first()
    if team is None:
        raise CommandError(f"user {username!r} is not a member of a team named {team_name!r}")
    return user, team
