"""Notes and tags by any team member; stop, resume and delete by the owner or a team admin only."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from experiments_app import services
from experiments_app.models import Experiment, Membership, Metric, Run
from tests.web.helpers import make_user, record_finished_run


@pytest.fixture
def mate(team_a):
    return make_user("mate", team_a, Membership.Role.MEMBER)


@pytest.fixture
def team_admin(team_a):
    return make_user("boss", team_a, Membership.Role.ADMIN)


def test_any_member_edits_notes_and_tags_outsiders_cannot(client, experiment, mate, bob):
    client.force_login(mate)
    url = reverse("experiments:experiment_notes", kwargs={"experiment_id": experiment.pk})
    response = client.post(url, {"notes": "seed 1 <i>diverged</i>", "tags": "a, b, a"})
    assert response.status_code == 302
    experiment.refresh_from_db()
    assert experiment.notes == "seed 1 <i>diverged</i>" and experiment.tags == ["a", "b"]
    page = client.get(reverse("experiments:experiment", kwargs={"experiment_id": experiment.pk})).content.decode()
    assert "seed 1 &lt;i&gt;diverged&lt;/i&gt;" in page
    assert client.post(url, {"notes": "", "tags": "x" * 41}).status_code == 400
    with pytest.raises(PermissionDenied):
        services.experiment_update_notes(user=bob, experiment=experiment, notes="x", tags=[])
    client.force_login(bob)
    assert client.post(url, {"notes": "hacked", "tags": ""}).status_code == 404
    experiment.refresh_from_db()
    assert experiment.notes == "seed 1 <i>diverged</i>"


def test_a_plain_member_may_not_stop_or_delete(client, experiment, run, mate):
    client.force_login(mate)
    assert client.post(reverse("experiments:run_stop", kwargs={"run_id": run.pk})).status_code == 403
    assert client.post(reverse("experiments:experiment_stop", kwargs={"experiment_id": experiment.pk})).status_code == 403
    assert client.post(reverse("experiments:run_delete", kwargs={"run_id": run.pk})).status_code == 403
    assert client.post(reverse("experiments:experiment_delete", kwargs={"experiment_id": experiment.pk})).status_code == 403
    run.refresh_from_db()
    assert not run.stop_requested and Experiment.objects.filter(pk=experiment.pk).exists()
    page = client.get(reverse("experiments:run", kwargs={"run_id": run.pk})).content.decode()
    assert 'data-locked="1"' in page and "run_delete" not in page


def test_only_the_owner_or_a_team_admin_may_resume_and_sees_the_button(client, run, mate, team_admin, alice):
    Run.objects.filter(pk=run.pk).update(status=Run.Status.INTERRUPTED, error="the worker running it stopped")
    resume = reverse("experiments:run_resume", kwargs={"run_id": run.pk})
    page = reverse("experiments:run", kwargs={"run_id": run.pk})
    client.force_login(mate)
    assert client.post(resume).status_code == 403
    assert Run.objects.get(pk=run.pk).status == Run.Status.INTERRUPTED
    assert resume not in client.get(page).content.decode()
    with pytest.raises(PermissionDenied):
        services.run_resume(user=mate, run=run)
    for manager in (alice, team_admin):
        Run.objects.filter(pk=run.pk).update(status=Run.Status.INTERRUPTED)
        client.force_login(manager)
        assert resume in client.get(page).content.decode()
        assert client.post(resume).status_code == 302
        assert Run.objects.get(pk=run.pk).status == Run.Status.QUEUED


def test_a_team_admin_stops_and_deletes_someone_elses_experiment(client, experiment, team_admin, tmp_path, settings,
                                                                  django_capture_on_commit_callbacks):
    settings.RUNS_DIR = tmp_path
    client.force_login(team_admin)
    assert client.post(reverse("experiments:experiment_stop", kwargs={"experiment_id": experiment.pk})).status_code == 302
    assert set(experiment.runs.values_list("status", flat=True)) == {Run.Status.CANCELLED}
    run = experiment.runs.get(seed=0)
    out = services.run_out_dir(run=run)
    out.mkdir(parents=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(reverse("experiments:run_delete", kwargs={"run_id": run.pk})).status_code == 302
    assert not Run.objects.filter(pk=run.pk).exists() and not out.exists(), "the checkpoint goes too"
    assert client.post(reverse("experiments:experiment_delete", kwargs={"experiment_id": experiment.pk})).status_code == 302
    assert not Experiment.objects.filter(pk=experiment.pk).exists()


def test_active_runs_must_be_stopped_before_deleting(alice, experiment, run):
    with pytest.raises(ValidationError, match="stop it first"):
        services.run_delete(user=alice, run=run)
    with pytest.raises(ValidationError, match="stop them first"):
        services.experiment_delete(user=alice, experiment=experiment)
    record_finished_run(run, [0.5])
    services.run_delete(user=alice, run=run)
    assert not Metric.objects.filter(run_id=run.pk).exists()


def test_the_owner_may_stop_their_run(client, alice, run):
    client.force_login(alice)
    assert client.post(reverse("experiments:run_stop", kwargs={"run_id": run.pk})).status_code == 302
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
