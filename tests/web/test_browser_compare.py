"""The compare page in headless Chromium, against the same `run_local.py` stack as
test_browser.py (its fixtures): two finished runs, picked with the runs list's checkboxes, are
drawn as two curves, summarised and diffed; the smoothing slider redraws and updates the URL.
Saves a screenshot to test-artifacts/compare.png."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.browser import screenshot
from tests.web.test_browser import ROOT, page, pytestmark, stack  # noqa: F401  (fixtures and marks reused)

MAKE_RUNS = """
import django; django.setup()
from django.contrib.auth import get_user_model
from experiments_app import services
from experiments_app.models import Team
from tests.web.helpers import record_finished_run, small_hyperparameters
user = get_user_model().objects.get(username="tester")
team = Team.objects.get(name="Testers")
ids = []
for name, lr, returns in [("<i>curve A</i>", 3e-4, [0.0, 0.2, 0.5, 0.7, 0.9]), ("curve B", 1e-3, [0.1, 0.1, 0.3, 0.3, 0.4])]:
    e = services.experiment_create(owner=user, team=team, name=name, env_id="BabyAI-GoToRedBallNoDists-v0", mode="ppo",
                                   teacher_model="", hyperparameters=small_hyperparameters(learning_rate=lr), seeds=[0],
                                   enqueue=False)
    record_finished_run(e.runs.get(), returns)
    ids.append(e.runs.get().pk)
print(",".join(map(str, ids)))
"""


def finished_runs(log_path) -> list[int]:
    """Two finished runs stored in the stack's database through the sink's service."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{log_path.parent / 'db.sqlite3'}",
           "DJANGO_SETTINGS_MODULE": "bidir_site.settings_test"}
    env.pop("REDIS_URL", None)
    out = subprocess.run([sys.executable, "-c", MAKE_RUNS], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return [int(i) for i in out.stdout.strip().splitlines()[-1].split(",")]


def test_compare_two_finished_runs(stack, page):
    base, _, log = stack
    run_ids = finished_runs(log)
    page.goto(base + "/runs/?q=curve")
    for run_id in run_ids:
        page.check(f"input[name=runs][value='{run_id}']")
    page.click("#compare-form button[type=submit]")
    page.wait_for_url("**/compare/?runs=*")
    page.wait_for_function("document.body.dataset.drawn === '1'", timeout=30000)

    curves = page.evaluate("document.getElementById('chart-runs').data.map(t => [t.name, t.x.length])")
    assert sorted(curves) == [["&lt;i&gt;curve A&lt;/i&gt; · seed 0", 5], ["curve B · seed 0", 5]]
    legend = page.text_content("#chart-runs .legend")
    assert "<i>curve A</i> · seed 0" in legend and "curve B · seed 0" in legend, "labels shown literally"
    assert len(page.evaluate("document.getElementById('chart-experiments').data")) == 6, "band and mean per experiment"
    rows = page.locator("#summary-table tbody tr")
    assert rows.count() == 4, "two runs and two experiments"
    assert "0.462" in rows.nth(0).text_content(), "AUC of curve A: its average return, (1.4 + 0.45) / 4"
    diff = page.text_content("#config-diff")
    assert "learning_rate" in diff and "0.0003" in diff and "0.001" in diff

    page.locator("#smoothing").fill("0.5")
    page.wait_for_function("document.body.dataset.drawn === '2'", timeout=30000)
    assert "smoothing=0.5" in page.url
    assert len(page.evaluate("document.getElementById('chart-runs').data")) == 4, "smoothed lines over faded raw ones"
    assert "smoothing=0.5" in page.get_attribute("#export-csv", "href")
    screenshot(page, "compare.png")
    assert page.errors == []
