"""study.lab (``python -m study run --backend celery``): the tiny study through two real Celery
workers (``tests.stack``: Redis and workers as ``make run`` starts them, on a SQLite database of
the test's own), under a cap that makes its second experiment wait, materialised into
directories the report reads, a second invocation a no-op; and, in this process on
pytest-django's database, the cap and resume rules, Ctrl-C and the timeout, and a materialised
run loading as the local run it was imported from."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from study.data import load_study
from study.report import build
from study.rundir import read_events
from study.runner import INVOCATIONS_FILE, prepare
from study.spec import RunKey
from tests.stack import ROOT, TEAM, USERNAME, Stack, make_database, wait_until
from tests.study.tiny import SPEC, TINY_LEVEL, shared_study
from tests.web.conftest import alice, queued, team_a  # noqa: F401
from workers.events import EventKind

CAP = 2
"""The owner's cap in the stack test: one experiment (2 seeds) at a time, so the second waits."""
CLIENT = (
    "import sys, study.spec; from tests.study.tiny import SPEC; study.spec.SPECS[SPEC.name] = SPEC; "
    "from study.__main__ import main; sys.exit(main(sys.argv[1:]))"
)
"""``python -m study`` with the tiny spec among the named ones."""


def run_client(stack: Stack, out: Path) -> subprocess.CompletedProcess:
    """``python -m study run tiny --backend celery`` against the stack, as a lab's machine runs it."""
    args = ["run", "tiny", "--out", str(out), "--backend", "celery", "--team", TEAM, "--owner", USERNAME,
            "--timeout", "240", "--no-report"]
    return subprocess.run([sys.executable, "-c", CLIENT, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**stack.env, "BIDIR_MAX_ACTIVE_RUNS_PER_USER": str(CAP)})


@pytest.fixture
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of the test's own on a new database with the user USERNAME in TEAM; stopped after."""
    database = tmp_path_factory.mktemp("lab-db") / "db.sqlite3"
    make_database(database)
    stack = Stack(tmp_path_factory.mktemp("lab-stack"), database)
    yield stack
    stack.close()


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_study_runs_on_two_workers_and_loads_as_a_local_one(stack: Stack, tmp_path: Path) -> None:
    stack.start_redis()
    for node in ("w1", "w2"):
        stack.start_worker(node)
    # Both ready before the first launch: each then takes one of the first experiment's runs.
    wait_until(lambda: all(" ready." in stack.log(f"worker:{n}") for n in ("w1", "w2")), 120,
               f"two workers ready\n{stack.logs_tail()}")
    out = tmp_path / "study"
    started = time.monotonic()
    first = run_client(stack, out)
    wall_s = time.monotonic() - started
    assert first.returncode == 0, f"{first.stderr[-3000:]}\n{stack.logs_tail()}"

    experiments = stack.query("SELECT id, name, mode, tags, created FROM experiments_app_experiment ORDER BY created")
    cells = list(dict.fromkeys((k.level.env_id, k.mode) for k in SPEC.runs()))  # in launch order
    assert [e["name"] for e in experiments] == [f"study tiny: {mode} on {env_id}" for env_id, mode in cells]
    assert all("study" in json.loads(e["tags"]) for e in experiments)
    runs = {(row["mode"], row["seed"]): dict(row) for row in stack.query(
        "SELECT r.*, e.mode FROM experiments_app_run r JOIN experiments_app_experiment e ON e.id = r.experiment_id")}
    assert sorted(runs) == sorted((k.mode, k.seed) for k in SPEC.runs())
    assert all(r["status"] == "succeeded" and r["attempt"] >= 1 for r in runs.values())
    assert {r["worker_host"].split("@")[0] for r in runs.values()} == {"w1", "w2"}, "both workers trained runs"
    # The cap (2) held the second experiment back until the first one's runs were done.
    assert "waiting to launch" in first.stderr
    first_done = max(r["finished_at"] for r in runs.values() if r["experiment_id"] == experiments[0]["id"])
    assert experiments[1]["created"] >= first_done

    data = load_study(out)
    assert data.missing == [] and len(data.runs) == len(SPEC.runs())
    for run in data.runs:
        row = runs[run.key.mode, run.key.seed]
        assert run.summary == json.loads(row["summary"])
        curve = stack.query("SELECT timestep, mean_return FROM experiments_app_metric WHERE run_id = ? AND kind = "
                            "'metrics' AND mean_return IS NOT NULL ORDER BY seq", row["id"])
        assert np.array_equal(run.returns[0], [c[0] for c in curve]) and np.array_equal(run.returns[1], [c[1] for c in curve])
        hints = stack.query("SELECT COUNT(*) FROM experiments_app_hint WHERE run_id = ?", row["id"])[0][0]
        assert len(run.hints) == hints and (hints > 0) == (run.key.mode == "oracle")
        assert run.wall_s_to_threshold is None or run.wall_s_to_threshold > 0
    report = build(data)
    assert len(report["runs"]) == len(SPEC.runs()) and report["wall_s"] > 0
    (line,) = [json.loads(x) for x in (out / INVOCATIONS_FILE).read_text().splitlines()]
    assert line["backend"] == "celery" and line["workers"] == 2 and line["runs_done"] == len(SPEC.runs())

    files = {k.name: (k.directory(out) / "events.jsonl").read_bytes() for k in SPEC.runs()}
    again = run_client(stack, out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert stack.query("SELECT COUNT(*) FROM experiments_app_experiment")[0][0] == len(cells)
    assert stack.query("SELECT COUNT(*) FROM experiments_app_run")[0][0] == len(SPEC.runs())
    assert files == {k.name: (k.directory(out) / "events.jsonl").read_bytes() for k in SPEC.runs()}
    second = json.loads((out / INVOCATIONS_FILE).read_text().splitlines()[1])
    assert second["workers"] == 2 and second["runs_done"] == len(SPEC.runs())
    print(f"4 runs on 2 workers, cap {CAP}: {wall_s:.1f} s")


def test_the_cap_holds_back_a_cell_and_failed_or_interrupted_runs_are_resumed_then_reported(
        alice, team_a, queued, settings, tmp_path, django_capture_on_commit_callbacks) -> None:  # noqa: F811
    from experiments_app.models import Run
    from study.lab import RESUMES, _Study

    settings.MAX_ACTIVE_RUNS_PER_USER = 2
    out = tmp_path / "study"
    prepare(SPEC, out)
    said: list[str] = []
    study = _Study(SPEC, out, alice, team_a)

    def poll():
        with django_capture_on_commit_callbacks(execute=True):  # the tasks are sent once the writes commit
            return study.poll(said.append)

    outcome, frames = poll()
    assert len(queued) == 2 and frames == 0 and len(outcome.stopped) == 4 and any("waiting to launch" in s for s in said)
    poll()
    assert len(queued) == 2, "still no room: nothing more launched"

    ppo0, ppo1 = (RunKey(TINY_LEVEL, "ppo", seed) for seed in (0, 1))
    run = Run.objects.get(experiment__mode="ppo", seed=0)
    Run.objects.filter(experiment__mode="ppo", seed=1).update(status=Run.Status.CANCELLED)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.INTERRUPTED, error="the worker running it stopped")
    outcome, _ = poll()
    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED and ppo0.name in outcome.stopped
    assert "cancelled in the dashboard" in outcome.failed[ppo1.name], "a cancelled run is final"
    assert [r for r, _ in queued].count(run.pk) == 2, "its task sent again"
    assert not Run.objects.filter(experiment__mode="oracle").exists(), "the resumed run holds the room"

    for _ in range(RESUMES[Run.Status.FAILED] + 1):
        Run.objects.filter(pk=run.pk).update(status=Run.Status.FAILED, error="RuntimeError: boom\ntraceback")
        outcome, _ = poll()
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED and outcome.failed[ppo0.name] == "RuntimeError: boom\ntraceback"
    assert [r for r, _ in queued].count(run.pk) == 2 + RESUMES[Run.Status.FAILED]
    assert any(s.startswith(f"resumed {ppo0.name} (failed: RuntimeError: boom)") for s in said)
    assert Run.objects.filter(experiment__mode="oracle").count() == 2, "room again: the second cell launched"


def test_a_cell_with_more_seeds_than_the_cap_is_refused_before_anything_launches(
        alice, team_a, queued, settings, tmp_path) -> None:  # noqa: F811
    from experiments_app.models import Experiment
    from study.lab import _Study
    from study.runner import StudyError

    settings.MAX_ACTIVE_RUNS_PER_USER = 1
    out = tmp_path / "study"
    prepare(SPEC, out)
    with pytest.raises(StudyError, match="study tiny: ppo on BabyAI-GoToRedBallNoDists-v0: 2 seeds, more than the 1 runs"):
        _Study(SPEC, out, alice, team_a)
    assert not Experiment.objects.exists() and queued == []


def test_an_experiment_of_the_same_name_with_another_teacher_is_not_reused(alice, team_a) -> None:  # noqa: F811
    from experiments_app.studies import study_experiment_arguments, study_experiment_conflict

    arguments = study_experiment_arguments(spec=SPEC, level=TINY_LEVEL, mode="bidirectional", seeds=[0])
    experiment = type("E", (), {"env_id": arguments["env_id"], "mode": "bidirectional",
                                "teacher_model": "smollm2-135m-instruct-q4_1", "hyperparameters": arguments["hyperparameters"]})()
    assert "with the teacher smollm2-135m-instruct-q4_1" in study_experiment_conflict(experiment=experiment,
                                                                                      arguments=arguments)
    experiment.teacher_model = arguments["teacher_model"]
    assert study_experiment_conflict(experiment=experiment, arguments=arguments) is None


def test_a_materialised_run_loads_as_the_local_run_it_was_imported_from(
        alice, queued, tmp_path, tmp_path_factory) -> None:  # noqa: F811
    from django.core.management import call_command

    from experiments_app.models import Run
    from study.data import load_run
    from study.lab import materialise

    local = shared_study(tmp_path_factory)
    call_command("import_study", str(local), "--team", "A", "--owner", "alice", stdout=io.StringIO())
    Run.objects.filter(experiment__mode="oracle", seed=1).update(teacher_fault="TeacherError: the LLM timed out")
    out = tmp_path / "study"
    for key in SPEC.runs():
        run = Run.objects.select_related("experiment").get(experiment__mode=key.mode, seed=key.seed)
        materialise(run, key, out)
        ours, theirs = load_run(key, out), load_run(key, local)
        assert ours.summary == theirs.summary and ours.hints == theirs.hints
        assert ours.wall_s_to_threshold == theirs.wall_s_to_threshold
        for curve in ("returns", "accuracy"):
            assert all(np.array_equal(a, b) for a, b in zip(getattr(ours, curve), getattr(theirs, curve)))
        fault = "TeacherError: the LLM timed out" if (key.mode, key.seed) == ("oracle", 1) else None
        assert ours.teacher_fault == fault
        events = read_events(key.directory(out))
        assert events[0].kind == EventKind.RUN_STARTED and events[-1].kind == EventKind.RUN_FINISHED
        assert events[0].data == read_events(key.directory(local))[0].data, "the run_started the engine wrote"
        assert [e.seq for e in events] == sorted({e.seq for e in events}) and events[-1].seq == run.last_seq


def test_ctrl_c_and_the_timeout_stop_only_the_waiting_and_a_second_invocation_reuses_the_experiments(
        alice, team_a, queued, tmp_path, monkeypatch) -> None:  # noqa: F811
    from experiments_app.models import Experiment, Run
    from study import lab

    out = tmp_path / "study"
    poll = lab._Study.poll

    def poll_then_ctrl_c(self, say):
        try:
            return poll(self, say)
        finally:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(lab._Study, "poll", poll_then_ctrl_c)
    handler = signal.getsignal(signal.SIGINT)  # Python's, or ignored where pytest runs in the background
    outcome = lab.run_lab(SPEC, out, team="A", owner="alice", show_progress=False, poll_s=0.05)
    assert sorted(outcome.stopped) == sorted(k.name for k in SPEC.runs()) and not outcome.failed and not outcome.done
    assert signal.getsignal(signal.SIGINT) is handler, "Ctrl-C is handled as before again"
    monkeypatch.undo()
    outcome = lab.run_lab(SPEC, out, team="A", owner="alice", show_progress=False, poll_s=0.05, timeout_s=0.2)
    assert len(outcome.stopped) == len(SPEC.runs())
    assert Experiment.objects.count() == 2 and Run.objects.count() == len(SPEC.runs()), "nothing launched twice"
    log = [json.loads(line) for line in (out / INVOCATIONS_FILE).read_text().splitlines()]
    assert [(i["backend"], i["runs_done"], i["runs_total"]) for i in log] == [("celery", 0, len(SPEC.runs()))] * 2
