"""Teams in the web app: any user creates a team and becomes its admin; its admins add members
by username, make them admin or member and remove them; any member leaves; the last admin
stays while others remain. And a user changes their password."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from experiments_app import selectors, services
from experiments_app.models import Experiment, Membership, Team
from tests.web.helpers import PASSWORD, make_user


@pytest.fixture
def carol(db):
    """A user in no team."""
    return make_user("carol", None)


@pytest.fixture
def mate(team_a):
    return make_user("mate", team_a, Membership.Role.MEMBER)


def role_of(user, team) -> str | None:
    membership = Membership.objects.filter(user=user, team=team).first()
    return membership.role if membership else None


def team_url(name: str, team: Team, **kwargs) -> str:
    return reverse(f"experiments:{name}", kwargs={"team_id": team.pk, **kwargs})


# --- services --------------------------------------------------------------------------------


def test_team_create_makes_its_creator_admin_and_refuses_a_taken_name_in_any_case(carol, team_a):
    team = services.team_create(user=carol, name="Lab")
    assert role_of(carol, team) == Membership.Role.ADMIN
    for taken in ("Lab", "lab", "a"):
        with pytest.raises(ValidationError, match="taken") as caught:
            services.team_create(user=carol, name=taken)
        assert set(caught.value.message_dict) == {"name"}
    with pytest.raises(ValidationError) as caught:
        services.team_create(user=carol, name="x" * 101)
    assert "name" in caught.value.message_dict
    assert Team.objects.count() == 2


def test_only_a_team_admin_adds_and_a_member_cannot_be_added_twice(alice, mate, carol, team_a):
    with pytest.raises(PermissionDenied):
        services.team_member_add(by=mate, team=team_a, user=carol)
    assert role_of(carol, team_a) is None
    services.team_member_add(by=alice, team=team_a, user=carol, role=Membership.Role.ADMIN)
    assert role_of(carol, team_a) == Membership.Role.ADMIN
    with pytest.raises(ValidationError, match="carol is already a member of A"):
        services.team_member_add(by=alice, team=team_a, user=carol)
    with pytest.raises(ValidationError):
        services.team_member_add(team=team_a, user=make_user("dave", None), role="owner")
    assert role_of(carol, team_a) == Membership.Role.ADMIN


def test_roles_change_by_admins_only_and_the_last_admin_stays(alice, mate, team_a):
    with pytest.raises(PermissionDenied):
        services.team_member_set_role(by=mate, team=team_a, user=mate, role=Membership.Role.ADMIN)
    with pytest.raises(ValidationError, match="You are the only admin of A and cannot step down"):
        services.team_member_set_role(by=alice, team=team_a, user=alice, role=Membership.Role.MEMBER)
    services.team_member_set_role(by=alice, team=team_a, user=mate, role=Membership.Role.ADMIN)
    services.team_member_set_role(by=mate, team=team_a, user=alice, role=Membership.Role.MEMBER)
    assert (role_of(alice, team_a), role_of(mate, team_a)) == (Membership.Role.MEMBER, Membership.Role.ADMIN)
    with pytest.raises(PermissionDenied):
        services.team_member_set_role(by=alice, team=team_a, user=alice, role=Membership.Role.ADMIN)


def test_members_leave_admins_remove_and_the_last_admin_cannot_leave_others_behind(alice, mate, carol, team_a):
    services.team_member_add(team=team_a, user=carol)
    with pytest.raises(PermissionDenied):
        services.team_member_remove(by=mate, team=team_a, user=carol)
    with pytest.raises(ValidationError, match="You are the only admin of A and cannot leave"):
        services.team_member_remove(by=alice, team=team_a, user=alice)
    assert services.team_member_remove(by=carol, team=team_a, user=carol) is False, "leaving"
    assert services.team_member_remove(by=alice, team=team_a, user=mate) is False, "removed by an admin"
    assert list(selectors.team_members(team=team_a).values_list("user__username", flat=True)) == ["alice"]


def test_the_last_member_leaving_deletes_the_team_unless_it_has_experiments(alice, team_a, experiment):
    with pytest.raises(ValidationError, match="the last member of A, which has 1 experiment"):
        services.team_member_remove(by=alice, team=team_a, user=alice)
    assert Experiment.objects.filter(pk=experiment.pk).exists() and role_of(alice, team_a) == Membership.Role.ADMIN
    Experiment.objects.all().delete()
    assert services.team_member_remove(by=alice, team=team_a, user=alice) is True
    assert not Team.objects.filter(pk=team_a.pk).exists()


def test_team_overview_counts_members_and_experiments_with_the_users_role(alice, mate, bob, team_a, team_b, experiment):
    services.team_member_add(team=team_b, user=mate, role=Membership.Role.ADMIN)
    teams = {t.name: (t.role, t.member_count, t.experiment_count) for t in selectors.team_overview(user=mate)}
    assert teams == {"A": ("member", 2, 1), "B": ("admin", 2, 0)}


# --- pages -----------------------------------------------------------------------------------


def test_a_user_creates_a_team_from_the_teams_page(client, carol, team_a):
    client.force_login(carol)
    page = client.get(reverse("experiments:teams"))
    assert page.status_code == 200 and "You are in no team yet" in page.content.decode()
    created = client.post(reverse("experiments:teams"), {"name": "  Lab  "}, follow=True)
    team = Team.objects.get(name="Lab")
    assert created.redirect_chain[-1][0] == team_url("team", team)
    assert "Created Lab: you are its admin." in created.content.decode()
    listed = client.get(reverse("experiments:teams")).content.decode()
    assert team_url("team", team) in listed and ">admin<" in listed
    for bad, message in [("a", "is taken"), ("", "This field is required"), ("Lab\u202e", "no control or invisible"),
                         ("x" * 101, "at most 100 characters")]:
        response = client.post(reverse("experiments:teams"), {"name": bad})
        assert response.status_code == 400 and message in response.content.decode(), bad
    assert Team.objects.count() == 2


def test_an_admin_adds_promotes_demotes_and_removes_a_member(client, alice, carol, team_a):
    client.force_login(alice)
    page = client.get(team_url("team", team_a)).content.decode()
    assert "Add a member" in page and team_url("team_member_add", team_a) in page
    added = client.post(team_url("team_member_add", team_a), {"username": "carol", "role": "member"}, follow=True)
    assert "Added carol to A as a member." in added.content.decode() and role_of(carol, team_a) == "member"
    for body, message in [({"username": "nobody", "role": "member"}, "no user is named &quot;nobody&quot;"),
                          ({"username": "carol", "role": "member"}, "carol is already a member of A"),
                          ({"username": "carol", "role": "owner"}, "Select a valid choice")]:
        response = client.post(team_url("team_member_add", team_a), body)
        assert response.status_code == 400 and message in response.content.decode(), body
    promote = team_url("team_member_role", team_a, user_id=carol.pk)
    assert "carol is now an admin of A." in client.post(promote, {"role": "admin"}, follow=True).content.decode()
    assert role_of(carol, team_a) == "admin"
    assert client.post(promote, {"role": "owner"}).status_code == 400
    assert "carol is now a member of A." in client.post(promote, {"role": "member"}, follow=True).content.decode()
    removed = client.post(team_url("team_member_remove", team_a, user_id=carol.pk), follow=True)
    assert "Removed carol from A." in removed.content.decode() and role_of(carol, team_a) is None
    assert client.post(team_url("team_member_remove", team_a, user_id=carol.pk)).status_code == 404, "no longer a member"


def test_the_last_admin_is_told_why_they_cannot_leave_or_step_down(client, alice, mate, team_a):
    client.force_login(alice)
    left = client.post(team_url("team_leave", team_a), follow=True)
    assert left.redirect_chain[-1][0] == team_url("team", team_a)
    assert "You are the only admin of A and cannot leave: make another member admin first" in left.content.decode()
    demoted = client.post(team_url("team_member_role", team_a, user_id=alice.pk), {"role": "member"}, follow=True)
    assert "You are the only admin of A and cannot step down" in demoted.content.decode()
    assert role_of(alice, team_a) == "admin"


def test_a_plain_member_sees_the_team_leaves_it_and_may_not_change_it(client, alice, mate, carol, team_a):
    client.force_login(mate)
    page = client.get(team_url("team", team_a)).content.decode()
    assert "alice" in page and "Add a member" not in page and "Make admin" not in page
    assert client.post(team_url("team_member_add", team_a), {"username": "carol", "role": "member"}).status_code == 403
    assert client.post(team_url("team_member_role", team_a, user_id=mate.pk), {"role": "admin"}).status_code == 403
    assert client.post(team_url("team_member_remove", team_a, user_id=alice.pk)).status_code == 403
    assert (role_of(carol, team_a), role_of(mate, team_a), role_of(alice, team_a)) == (None, "member", "admin")
    left = client.post(team_url("team_leave", team_a), follow=True)
    assert left.redirect_chain[-1][0] == reverse("experiments:teams") and "You left A." in left.content.decode()
    assert client.get(team_url("team", team_a)).status_code == 404


def test_the_navigation_links_teams_and_password(client, alice):
    client.force_login(alice)
    page = client.get(reverse("experiments:list")).content.decode()
    assert f'href="{reverse("experiments:teams")}"' in page and f'href="{reverse("password_change")}"' in page


def test_a_user_changes_their_password_and_stays_logged_in(client, alice):
    client.force_login(alice)
    url = reverse("password_change")
    assert client.get(url).status_code == 200
    new = "another-long-password-43"
    wrong = client.post(url, {"old_password": "not it", "new_password1": new, "new_password2": new})
    assert wrong.status_code == 400 and "Your old password was entered incorrectly" in wrong.content.decode()
    differ = client.post(url, {"old_password": PASSWORD, "new_password1": new, "new_password2": new + "x"})
    assert differ.status_code == 400
    assert client.put(url).status_code == 405
    changed = client.post(url, {"old_password": PASSWORD, "new_password1": new, "new_password2": new}, follow=True)
    assert changed.redirect_chain[-1][0] == reverse("experiments:list")
    assert "Your password is changed." in changed.content.decode()
    alice.refresh_from_db()
    assert alice.check_password(new)
    assert client.get(reverse("experiments:list")).status_code == 200, "still logged in"
