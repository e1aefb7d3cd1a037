import json

import pytest
from django.urls import reverse

from experiments_app import health
from experiments_app.forms import HP_PREFIX
from experiments_app.hyperparameters import hyperparameter_defaults
from experiments_app.models import Experiment, Run


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(client, bob):
    client.force_login(bob)
    return client


@pytest.mark.parametrize("name, kwargs", [("experiments:list", {}), ("experiments:launch", {}), ("experiments:run", {"run_id": 1})])
def test_pages_need_a_login(client, db, name, kwargs):
    response = client.get(reverse(name, kwargs=kwargs))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_login_page_renders(client, db):
    assert client.get(reverse("login")).status_code == 200


def test_list_shows_own_team_experiments_escaped(alice_client, experiment):
    Experiment.objects.filter(pk=experiment.pk).update(name="<script>alert(1)</script>")
    page = alice_client.get(reverse("experiments:list")).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert reverse("experiments:run", kwargs={"run_id": experiment.runs.first().pk}) in page


def test_team_b_cannot_see_team_a_run(bob_client, experiment, run):
    assert "alice&#x27;s experiment" not in bob_client.get(reverse("experiments:list")).content.decode()
    assert bob_client.get(reverse("experiments:run", kwargs={"run_id": run.pk})).status_code == 404
    assert bob_client.post(reverse("experiments:run_stop", kwargs={"run_id": run.pk})).status_code == 404
    assert bob_client.get(reverse("experiments:launch") + f"?clone={experiment.pk}").status_code == 404
    run.refresh_from_db()
    assert not run.stop_requested


def test_run_page_carries_state_and_static_plotly(alice_client, run):
    response = alice_client.get(reverse("experiments:run", kwargs={"run_id": run.pk}))
    page = response.content.decode()
    assert response.status_code == 200
    assert "vendor/plotly/plotly.min.js" in page and "experiments/run.js" in page and "cdn" not in page.lower()
    state = json.loads(page.split('id="run-state" type="application/json">')[1].split("</script>")[0])
    assert state["id"] == run.pk and state["status"] == "queued"


def launch_data(team) -> dict:
    """A valid launch form's POST: experiment "launched", seeds 4 and 5."""
    return {"name": "launched", "team": team.pk, "env_id": "BabyAI-GoToRedBallNoDists-v0", "mode": "ppo",
            "teacher_model": "", "seeds": "4, 5", "tags": "", "description": "", "notes": "",
            **{HP_PREFIX + k: v for k, v in hyperparameter_defaults().items()}}


def test_launch_creates_runs_and_redirects_to_the_first(alice_client, team_a, queued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(reverse("experiments:launch"), launch_data(team_a))
    experiment = Experiment.objects.get(name="launched")
    first = experiment.runs.get(seed=4)
    assert response.status_code == 302 and response.url == reverse("experiments:run", kwargs={"run_id": first.pk})
    assert sorted(r for r, _ in queued) == sorted(experiment.runs.values_list("pk", flat=True))


def test_launch_form_errors_are_shown(alice_client, team_a, queued):
    data = {"name": "", "team": team_a.pk, "env_id": "BabyAI-GoToRedBallNoDists-v0", "mode": "ppo", "seeds": "x",
            **{HP_PREFIX + k: v for k, v in hyperparameter_defaults().items()}, HP_PREFIX + "gamma": "7"}
    response = alice_client.post(reverse("experiments:launch"), data)
    page = response.content.decode()
    assert response.status_code == 400 and not Experiment.objects.exists() and queued == []
    assert "less than or equal to 1.0" in page and "is not a seed" in page


def test_a_launch_over_the_run_cap_is_refused_with_a_message(alice_client, experiment, team_a, settings):
    settings.MAX_ACTIVE_RUNS_PER_USER = 3  # alice's experiment has 2 queued runs
    response = alice_client.post(reverse("experiments:launch"), launch_data(team_a))
    page = response.content.decode()
    assert response.status_code == 400 and not Experiment.objects.filter(name="launched").exists()
    assert "alice has 2 run(s) queued or running, and one user may have at most 3" in page
    assert "Please correct the fields marked below" not in page, "no field is wrong"


def test_clone_prefills_the_form(alice_client, experiment):
    page = alice_client.get(reverse("experiments:launch") + f"?clone={experiment.pk}").content.decode()
    assert "alice&#x27;s experiment (copy)" in page and 'value="0, 1"' in page


def test_stop_returns_json_for_scripts(alice_client, run):
    response = alice_client.post(reverse("experiments:run_stop", kwargs={"run_id": run.pk}), HTTP_ACCEPT="application/json")
    assert response.json()["run"]["status"] == "cancelled"
    assert alice_client.get(reverse("experiments:run_stop", kwargs={"run_id": run.pk})).status_code == 405


def test_resume_of_a_queued_run_is_refused_with_a_message(alice_client, run):
    response = alice_client.post(reverse("experiments:run_resume", kwargs={"run_id": run.pk}), follow=True)
    assert "cannot be resumed" in response.content.decode()
    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED


def test_healthz_reports_each_check(client, db):
    response = client.get("/healthz")
    body = response.json()
    assert body["database"]["ok"] and body["broker"]["ok"] and body["channel_layer"]["ok"]
    assert body["workers"]["ok"] is False, "no worker runs during tests"
    assert response.status_code == 503 and body["ok"] is False


def test_anonymous_healthz_is_answered_from_a_recent_report_logged_in_users_from_a_fresh_one(
    client, alice, monkeypatch, settings
):
    checks: list[str] = []
    monkeypatch.setattr(health, "CHECKS", {"database": lambda: checks.append("database") or "sqlite"})
    settings.HEALTH_CACHE_S = 0.0
    assert client.get("/healthz").json() == {"database": {"ok": True}, "ok": True} and len(checks) == 1
    settings.HEALTH_CACHE_S = 60.0
    for _ in range(20):
        assert client.get("/healthz").json() == {"database": {"ok": True}, "ok": True}
    assert len(checks) == 1, "no check while the last report is recent"
    client.force_login(alice)
    assert client.get("/healthz").json()["database"]["detail"] == "sqlite" and len(checks) == 2
    client.logout()
    settings.HEALTH_CACHE_S = 0.0
    client.get("/healthz")
    assert len(checks) == 3, "a report older than HEALTH_CACHE_S is made again"
