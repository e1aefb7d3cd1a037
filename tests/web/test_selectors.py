from experiments_app import selectors
from experiments_app.models import Membership
from tests.web.helpers import make_user


def test_a_user_sees_only_their_teams_experiments_and_runs(experiment, run, bob):
    assert list(selectors.experiment_list(user=bob)) == []
    assert selectors.run_get(user=bob, run_id=run.pk) is None
    assert selectors.experiment_get(user=bob, experiment_id=experiment.pk) is None
    assert selectors.run_get(user=experiment.owner, run_id=run.pk) == run


def test_membership_grants_access_and_users_in_no_team_see_nothing(experiment, run, team_a):
    loner = make_user("loner", None)
    assert selectors.run_get(user=loner, run_id=run.pk) is None
    mate = make_user("mate", team_a, Membership.Role.MEMBER)
    assert list(selectors.experiment_list(user=mate)) == [experiment]
    assert selectors.run_get(user=mate, run_id=run.pk) == run


def test_experiment_list_does_not_repeat_an_experiment_per_membership(experiment, team_a, alice):
    make_user("mate", team_a)
    assert list(selectors.experiment_list(user=alice)) == [experiment]
