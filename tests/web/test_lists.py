"""Runs and experiments lists: search, filters, sorting, pagination, team scope, 400s."""

import pytest
from django.urls import reverse

from experiments_app import selectors, services
from experiments_app.models import Membership, Run
from experiments_app.selectors import ListFilters
from tests.web.helpers import make_user, record_finished_run, small_hyperparameters


def launch(owner, team, name, **overrides):
    kwargs = dict(owner=owner, team=team, name=name, env_id="BabyAI-GoToRedBallNoDists-v0", mode="ppo",
                  teacher_model="", hyperparameters=small_hyperparameters(), seeds=[0])
    return services.experiment_create(**{**kwargs, **overrides})


@pytest.fixture
def catalogue(alice, team_a, bob, team_b, queued):
    """Three of team A's experiments (one by a second member) and one of team B."""
    carol = make_user("carol", team_a, Membership.Role.MEMBER)
    a = launch(alice, team_a, "Alpha bidir", description="the baseline", tags=["baseline", "été"])
    b = launch(alice, team_a, "beta", mode="oracle", env_id="BabyAI-GoToLocal-v0", tags=["oracle"])
    c = launch(carol, team_a, "gamma", seeds=[0, 1], tags=["baseline-2"])
    d = launch(bob, team_b, "B's secret", tags=["baseline"])
    record_finished_run(a.runs.get(), [0.1, 0.5], final_eval_return=0.5)
    record_finished_run(b.runs.get(), [0.2, 0.9], final_eval_return=0.9)
    return {"a": a, "b": b, "c": c, "d": d}


def names(user, **filters):
    return [e.name for e in selectors.experiment_search(user=user, filters=ListFilters(**filters))]


def test_experiment_filters_search_and_sorts_stay_within_the_team(alice, catalogue):
    assert names(alice) == ["gamma", "beta", "Alpha bidir"], "newest first, team B's hidden"
    assert names(alice, q="BASELINE") == ["gamma", "Alpha bidir"], "description and tags, any case"
    assert names(alice, q="ét") == ["Alpha bidir"], "non-ASCII tags are searched"
    assert names(alice, tag="baseline") == ["Alpha bidir"], "a tag filter is exact"
    assert names(alice, tag="été") == ["Alpha bidir"]
    assert names(alice, mode="oracle") == ["beta"]
    assert names(alice, level="BabyAI-GoToLocal-v0") == ["beta"]
    assert names(alice, owner="carol") == ["gamma"]
    assert names(alice, status="succeeded") == ["beta", "Alpha bidir"]
    assert names(alice, status="queued") == ["gamma"]
    assert names(alice, sort="name") == ["Alpha bidir", "beta", "gamma"]
    assert names(alice, sort="-final_return") == ["beta", "Alpha bidir", "gamma"], "missing returns last"
    assert names(alice, sort="final_return") == ["Alpha bidir", "beta", "gamma"]


def test_run_search_filters_on_run_status_and_experiment_fields(alice, catalogue):
    def runs(**filters):
        return [(r.experiment.name, r.seed) for r in selectors.run_search(user=alice, filters=ListFilters(**filters))]

    assert len(runs()) == 4
    assert runs(status="queued", sort="name") == [("gamma", 0), ("gamma", 1)]
    assert runs(sort="-final_return")[:2] == [("beta", 0), ("Alpha bidir", 0)]
    assert runs(tag="baseline") == [("Alpha bidir", 0)]
    assert runs(q="secret") == []


def test_final_eval_return_column_follows_the_summary(catalogue):
    assert catalogue["b"].runs.get().final_eval_return == 0.9
    services.run_discard_events(run=catalogue["b"].runs.get())
    assert Run.objects.get(experiment=catalogue["b"]).final_eval_return is None


def test_list_pages_render_filter_and_paginate(client, alice, catalogue, team_a, queued, settings):
    settings.MAX_ACTIVE_RUNS_PER_USER = 0  # 26 experiments' runs stay queued: more than a user may have
    client.force_login(alice)
    page = client.get(reverse("experiments:list"), {"q": "beta"}).content.decode()
    assert "beta" in page and "gamma" not in page and "B&#x27;s secret" not in page
    assert 'name="experiments" value="%d"' % catalogue["b"].pk in page
    runs_page = client.get(reverse("experiments:runs"), {"mode": "oracle"}).content.decode()
    assert "beta" in runs_page and "Alpha bidir" not in runs_page and 'name="runs"' in runs_page
    for i in range(26):
        launch(alice, team_a, f"bulk {i}")
    first = client.get(reverse("experiments:list"), {"q": "bulk"}).content.decode()
    assert "page 1 of 2" in first and "?q=bulk&amp;page=2" in first
    second = client.get(reverse("experiments:list"), {"q": "bulk", "page": 2}).content.decode()
    assert second.count('class="card experiment"') == 1


@pytest.mark.parametrize("params", [{"status": "nope"}, {"sort": "password"}, {"page": "x"}, {"mode": "evil"}])
def test_malformed_list_queries_are_400_with_the_reason(client, alice, catalogue, params):
    client.force_login(alice)
    for name in ("experiments:list", "experiments:runs"):
        response = client.get(reverse(name), params)
        assert response.status_code == 400 and "error-box" in response.content.decode()
