"""Teams and their members, and users made on the server (``make user``)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from experiments_app.models import Experiment, Membership, Team
from experiments_app.selectors import user_is_team_admin


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
