"""The compare page, its JSON and CSV exports, on runs stored through the sink's service."""

import csv
import io
import json

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from experiments_app import analysis, compare, services
from experiments_app.models import Run
from tests.web.helpers import event, metrics_data, record_finished_run, small_hyperparameters
from workers.events import EventKind


@pytest.fixture
def two_experiments(alice, team_a, queued):
    """Experiment 1: seeds 0, 1 (returns rise); experiment 2: one seed, another learning rate."""
    first = services.experiment_create(owner=alice, team=team_a, name="<b>first</b>", env_id="BabyAI-GoToRedBallNoDists-v0",
                                       mode="ppo", teacher_model="", hyperparameters=small_hyperparameters(), seeds=[0, 1])
    second = services.experiment_create(owner=alice, team=team_a, name="=second", env_id="BabyAI-GoToRedBallNoDists-v0",
                                        mode="ppo", teacher_model="", hyperparameters=small_hyperparameters(learning_rate=1e-3),
                                        seeds=[0])
    record_finished_run(first.runs.get(seed=0), [0.0, 0.5, 1.0], final_eval_return=0.8)
    record_finished_run(first.runs.get(seed=1), [0.0, 0.3, 0.6], final_eval_return=0.6)
    record_finished_run(second.runs.get(), [0.2, 0.2, 0.2], final_eval_return=0.2)
    return first, second


def build(user, runs=(), experiments=(), metric="mean_return", smoothing=0.0):
    return compare.comparison_build(user=user, run_ids=list(runs), experiment_ids=list(experiments), metric=metric, smoothing=smoothing)


def test_comparison_groups_seeds_into_bands_and_summarises(alice, two_experiments):
    first, second = two_experiments
    result = build(alice, experiments=[first.pk, second.pk])
    assert [r["seed"] for r in result["runs"]] == [0, 1, 0]
    run0 = result["runs"][0]
    assert run0["x"] == [1024, 2048, 3072] and run0["raw"] == [0.0, 0.5, 1.0] and run0["smoothed"] is None
    band = result["experiments"][0]
    assert band["runs"] == [r.pk for r in first.runs.order_by("seed")]
    assert len(band["x"]) == analysis.MAX_POINTS and band["x"][0] == 1024 and band["x"][-1] == 3072
    assert band["mean"][-1] == pytest.approx(0.8)
    half = 12.706204736174707 * np.std([1.0, 0.6], ddof=1) / np.sqrt(2)
    assert band["upper"][-1] == pytest.approx(0.8 + half, rel=1e-3), "4 significant digits are shipped"
    assert result["experiments"][1]["upper"][0] is None, "one seed: no interval"
    # AUC is the average training return: (0 + 2*.5 + 1) / 4 = .5 for seed 0
    assert run0["summary"]["auc"] == pytest.approx(0.5) and run0["summary"]["final_eval_return"] == 0.8
    assert result["experiments"][0]["summary"]["final_eval_return"]["mean"] == pytest.approx(0.7)
    assert result["config_diff"] == {"learning_rate": {f"<b>first</b> (#{first.pk})": 3e-4, f"=second (#{second.pk})": 1e-3}}


def test_smoothing_and_other_metrics(alice, two_experiments):
    first, _ = two_experiments
    result = build(alice, experiments=[first.pk], metric="guidance_coef", smoothing=0.5)
    run0 = result["runs"][0]
    assert run0["raw"] == pytest.approx([2 / 3, 1 / 3, 0.0], rel=1e-3)
    assert run0["smoothed"] == pytest.approx([2 / 3, 0.5, 0.25], rel=1e-3)
    assert build(alice, experiments=[first.pk], metric="teacher_accuracy")["runs"][0]["x"] == [], "null values are skipped"


def test_long_curves_are_downsampled_in_the_database(alice, two_experiments):
    run = two_experiments[1].runs.get()
    values = [float(i % 7) for i in range(1500)]
    services.run_record_events(run_id=run.pk, events=[
        event(100 + i, EventKind.METRICS, 10_000 + 8 * i, **metrics_data(v)) for i, v in enumerate(values)
    ])
    row = build(alice, runs=[run.pk], smoothing=0.9)["runs"][0]
    assert row["points"] == 1503
    assert 0 < len(row["x"]) == len(row["raw"]) == len(row["min"]) == len(row["smoothed"]) <= analysis.MAX_POINTS
    assert min(row["min"]) == 0.0 and max(row["max"]) == 6.0, "each point keeps its chunk's extremes"
    assert row["x"] == sorted(row["x"]) and row["x"][-1] <= 10_000 + 8 * 1499
    short = build(alice, runs=[two_experiments[0].runs.get(seed=0).pk])["runs"][0]
    assert short["min"] is None and short["max"] is None, "a run drawn whole has no envelope"


def test_other_teams_runs_are_dropped_everywhere(client, bob, two_experiments):
    first, _ = two_experiments
    ids = ",".join(str(r.pk) for r in first.runs.all())
    assert build(bob, runs=[r.pk for r in first.runs.all()], experiments=[first.pk])["runs"] == []
    client.force_login(bob)
    for fmt in ("json", "csv", "summary-csv"):
        body = client.get(reverse("experiments:compare"), {"runs": ids, "experiments": first.pk, "format": fmt}).content.decode()
        assert "first" not in body
    assert "Nothing to compare" in client.get(reverse("experiments:compare"), {"runs": ids}).content.decode()


def test_page_embeds_the_comparison_and_the_url_reproduces_it(client, alice, two_experiments):
    first, second = two_experiments
    client.force_login(alice)
    params = {"runs": second.runs.get().pk, "experiments": first.pk, "metric": "success_rate", "smoothing": "0.3"}
    response = client.get(reverse("experiments:compare"), params)
    page = response.content.decode()
    assert response.status_code == 200
    embedded = json.loads(page.split('id="comparison-data" type="application/json">')[1].split("</script>")[0])
    assert embedded == client.get(reverse("experiments:compare"), {**params, "format": "json"}).json()
    assert embedded["metric"] == "success_rate" and embedded["smoothing"] == 0.3 and len(embedded["runs"]) == 3
    assert "&lt;b&gt;first&lt;/b&gt;" in page and "<b>first</b>" not in page.split('id="comparison-data"')[0]
    assert 'id="summary-table"' in page and "learning_rate" in page and "experiments/compare.js" in page
    assert "format=csv" in page and f'value="{first.pk}"' in page


def test_checkbox_style_repeated_ids_are_accepted(client, alice, two_experiments):
    first, second = two_experiments
    client.force_login(alice)
    url = reverse("experiments:compare") + f"?runs={first.runs.get(seed=0).pk}&runs={second.runs.get().pk}&format=json"
    assert len(client.get(url).json()["runs"]) == 2


def test_csv_exports_are_what_is_shown(client, alice, two_experiments):
    first, second = two_experiments
    client.force_login(alice)
    params = {"experiments": f"{first.pk},{second.pk}", "smoothing": "0.5"}
    shown = client.get(reverse("experiments:compare"), {**params, "format": "json"}).json()
    response = client.get(reverse("experiments:compare"), {**params, "format": "csv"})
    assert response["Content-Type"].startswith("text/csv") and "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["series", "id", "label", "curve", "timestep", "mean_return"]
    smoothed = [float(r[5]) for r in rows if r[0] == "run" and r[1] == str(shown["runs"][0]["id"]) and r[3] == "smoothed"]
    assert smoothed == shown["runs"][0]["smoothed"]
    assert sum(1 for r in rows if r[0] == "experiment" and r[3] == "mean") == 2 * analysis.MAX_POINTS
    assert any(r[2] == "'=second · seed 0" for r in rows), "formula-like labels are quoted"
    summary = list(csv.reader(io.StringIO(client.get(reverse("experiments:compare"), {**params, "format": "summary-csv"}).content.decode())))
    assert summary[0][3:9] == list(compare.RUN_FIELDS) and len(summary) == 1 + 3 + 2
    assert float(summary[4][3]) == pytest.approx(0.7), "experiment row: mean final eval return"


@pytest.mark.parametrize("params", [
    {"runs": "1,abc"}, {"experiments": "-3"}, {"metric": "password"}, {"smoothing": "2"}, {"smoothing": "nan"},
    {"format": "xml"}, {"runs": "9" * 40},
])
def test_malformed_compare_queries_are_400(client, alice, db, params):
    client.force_login(alice)
    assert client.get(reverse("experiments:compare"), params).status_code == 400
    response = client.get(reverse("experiments:compare"), {"format": "json", **params})
    assert response.status_code == 400 and "error" in response.json()


def test_too_many_runs_is_a_clear_400(client, alice, two_experiments, monkeypatch):
    monkeypatch.setattr(compare, "MAX_COMPARE_RUNS", 2)
    client.force_login(alice)
    response = client.get(reverse("experiments:compare"), {"experiments": two_experiments[0].pk, "runs": two_experiments[1].runs.get().pk, "format": "json"})
    assert response.status_code == 400 and "at most 2 runs" in str(response.json()["fields"])


def test_too_many_runs_are_counted_not_loaded(alice, experiment):
    Run.objects.bulk_create(Run(experiment=experiment, seed=seed) for seed in range(2, compare.MAX_COMPARE_RUNS + 1))
    chosen = rf"\({compare.MAX_COMPARE_RUNS + 1} chosen\)"
    with CaptureQueriesContext(connection) as queries, pytest.raises(compare.TooManyRuns, match=chosen):
        build(alice, experiments=[experiment.pk])
    assert [q["sql"].lstrip()[:15] for q in queries] == ["SELECT COUNT(*)"], "one count, no run loaded"


def test_compare_needs_a_login(client, db):
    response = client.get(reverse("experiments:compare"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
