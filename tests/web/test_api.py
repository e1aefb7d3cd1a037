"""The read-only JSON API: session auth, team scope, pagination, 400 on malformed input."""

import pytest
from django.urls import reverse

from tests.web.helpers import record_finished_run


@pytest.fixture
def api(client, alice):
    client.force_login(alice)
    return client


def test_api_needs_a_session_and_answers_401_json(client, db):
    response = client.get(reverse("experiments:api_runs"))
    assert response.status_code == 401 and response.json() == {"error": "not logged in"}


def test_lists_are_paginated_filtered_and_team_scoped(api, experiment, client, bob):
    body = api.get(reverse("experiments:api_experiments")).json()
    assert body["count"] == 1 and body["results"][0]["name"] == "alice's experiment" and len(body["results"][0]["runs"]) == 2
    runs = api.get(reverse("experiments:api_runs"), {"page_size": 1, "sort": "name"}).json()
    assert runs["count"] == 2 and runs["num_pages"] == 2 and runs["next"] == 2 and runs["results"][0]["seed"] == 0
    assert api.get(reverse("experiments:api_runs"), {"page_size": 1, "page": 2}).json()["previous"] == 1
    assert api.get(reverse("experiments:api_runs"), {"page": 9}).status_code == 404
    assert api.get(reverse("experiments:api_runs"), {"status": "succeeded"}).json()["count"] == 0
    client.force_login(bob)
    assert client.get(reverse("experiments:api_experiments")).json()["count"] == 0
    assert client.get(reverse("experiments:api_experiment", kwargs={"experiment_id": experiment.pk})).status_code == 404
    run_id = experiment.runs.first().pk
    assert client.get(reverse("experiments:api_run", kwargs={"run_id": run_id})).status_code == 404
    assert client.get(reverse("experiments:api_run_metrics", kwargs={"run_id": run_id})).status_code == 404


def test_details(api, experiment, run):
    body = api.get(reverse("experiments:api_experiment", kwargs={"experiment_id": experiment.pk})).json()
    assert [r["seed"] for r in body["runs"]] == [0, 1] and body["hyperparameters"]["n_envs"] == 2
    detail = api.get(reverse("experiments:api_run", kwargs={"run_id": run.pk})).json()
    assert detail["id"] == run.pk and detail["experiment"] == experiment.pk and detail["status"] == "queued"


def test_metrics_continue_after_seq_by_kind(api, run):
    record_finished_run(run, [0.1, 0.2, 0.3, 0.4])  # seqs 2..5 are metrics
    url = reverse("experiments:api_run_metrics", kwargs={"run_id": run.pk})
    first = api.get(url, {"kind": "metrics", "limit": 3}).json()
    assert [e["seq"] for e in first["results"]] == [2, 3, 4] and first["next_after_seq"] == 4
    rest = api.get(url, {"kind": "metrics", "limit": 3, "after_seq": 4}).json()
    assert [e["data"]["mean_return"] for e in rest["results"]] == [0.4] and rest["next_after_seq"] is None
    assert api.get(url, {"kind": "evaluation"}).json()["results"] == []


@pytest.mark.parametrize("name, params", [
    ("api_runs", {"page": "two"}), ("api_runs", {"page_size": "0"}), ("api_runs", {"page_size": "100000"}),
    ("api_experiments", {"sort": "evil"}), ("api_experiments", {"status": "x"}), ("api_run_metrics", {"after_seq": "-1"}),
    ("api_run_metrics", {"after_seq": "1e3"}), ("api_run_metrics", {"kind": "hint"}), ("api_run_metrics", {"limit": "0"}),
    ("api_run_metrics", {"after_seq": "9" * 50}),
])
def test_malformed_parameters_are_400_with_the_field(api, run, name, params):
    kwargs = {"run_id": run.pk} if name == "api_run_metrics" else {}
    response = api.get(reverse(f"experiments:{name}", kwargs=kwargs), params)
    body = response.json()
    assert response.status_code == 400 and body["error"] == "invalid query parameters"
    assert set(body["fields"]) == set(params)


def test_api_is_read_only(api, run):
    assert api.post(reverse("experiments:api_run", kwargs={"run_id": run.pk})).status_code == 405
