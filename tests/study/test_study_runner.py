"""study.runner and study.rundir on a tiny real study: runs in a process pool, never redone,
resumed from a checkpoint after a crash, restarted without one; the timeline after a resume."""

import io
import json
import queue
import shutil

import pytest
from tqdm import tqdm

from study.__main__ import main
from study.rundir import RunState, read_events, run_state, timeline
from study.runner import INVOCATIONS_FILE, StudyError, _drain, run_study
from study.spec import SPECS, RunKey, StudySpec
from tests.study.tiny import SPEC, TINY_LEVEL, run_tiny, shared_study
from workers.events import Event, EventKind


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    return shared_study(tmp_path_factory)


def _dir(out, seed):
    return RunKey(TINY_LEVEL, "ppo", seed).directory(out)


def test_every_run_writes_its_own_directory(finished):
    for seed in SPEC.seeds:
        directory = _dir(finished, seed)
        summary = json.loads((directory / "summary.json").read_text())
        assert [summary[k] for k in ("env", "mode", "seed", "status")] == [TINY_LEVEL.env_id, "ppo", seed, "succeeded"]
        assert summary["return_threshold"] == TINY_LEVEL.return_threshold and summary["timesteps"] == 256
        events = read_events(directory)
        assert events[0].kind == EventKind.RUN_STARTED and events[-1].kind == EventKind.RUN_FINISHED
        assert not any(e.kind == EventKind.FRAME for e in events)
    log = [json.loads(line) for line in (finished / INVOCATIONS_FILE).read_text().splitlines()]
    assert log[0]["runs_done"] == 4 and log[0]["command"] == "pytest" and log[0]["machine"]["cpu_count"] >= 1


def test_finished_runs_are_not_run_again(finished):
    before = {seed: (_dir(finished, seed) / "events.jsonl").read_bytes() for seed in SPEC.seeds}
    outcome = run_study(SPEC, finished, workers=2, command="again", show_progress=False)
    assert outcome.complete and len(outcome.done) == 4
    assert all((_dir(finished, seed) / "events.jsonl").read_bytes() == before[seed] for seed in SPEC.seeds)


def test_a_crashed_run_resumes_from_its_checkpoint_and_one_without_restarts(finished, tmp_path):
    out = tmp_path / "study"
    shutil.copytree(finished, out)
    resumable, restarted = _dir(out, 0), _dir(out, 1)
    # Seed 0 crashed after its last checkpoint, mid-way through writing an event.
    (resumable / "summary.json").unlink()
    with (resumable / "events.jsonl").open("a") as f:
        f.write('{"seq": 99999, "kind": "metr')
    last_seq = read_events(resumable)[-1].seq
    # Seed 1 crashed before any checkpoint.
    shutil.rmtree(restarted / "checkpoint")
    (restarted / "summary.json").unlink()
    assert (run_state(resumable), run_state(restarted)) == (RunState.RESUMABLE, RunState.TODO)

    run_tiny(SPEC, out)

    events = read_events(resumable)
    starts = [e for e in events if e.kind == EventKind.RUN_STARTED]
    assert [s.data["resumed"] for s in starts] == [False, True]
    assert starts[1].seq == last_seq + 1, "event numbers continue after the file's last one"
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs))
    fresh = read_events(restarted)
    assert [e.kind for e in fresh].count(EventKind.RUN_STARTED) == 1 and fresh[0].seq == 1
    assert run_state(resumable) == run_state(restarted) == RunState.DONE


def test_another_spec_is_refused_in_the_same_directory(finished):
    with pytest.raises(StudyError, match="another spec"):
        run_study(StudySpec(**{**vars(SPEC), "seeds": (0, 1, 2)}), finished, workers=1, show_progress=False)


def _event(seq, kind, timestep, **data):
    return Event(seq=seq, kind=kind, timestep=timestep, time=float(seq), data=data)


def test_timeline_drops_the_work_redone_after_a_resume():
    events = [
        _event(1, EventKind.RUN_STARTED, 0, resumed=False, start_timestep=0),
        _event(2, EventKind.METRICS, 128, mean_return=0.1),
        _event(3, EventKind.CHECKPOINT, 128, path="c", timesteps=128),
        _event(4, EventKind.HINT, 128, situation_key="k"),
        _event(5, EventKind.METRICS, 256, mean_return=0.2),  # lost in the crash, done again below
        _event(6, EventKind.RUN_STARTED, 128, resumed=True, start_timestep=128),
        _event(7, EventKind.METRICS, 256, mean_return=0.3),
        _event(8, EventKind.RUN_FINISHED, 256, status="succeeded"),
    ]
    assert [e.seq for e in timeline(events)] == [1, 2, 3, 6, 7, 8]
    said = [_event(e.seq, e.kind, e.timestep, **{**e.data, "checkpoint_seq": 3}) if e.seq == 6 else e for e in events]
    assert [e.seq for e in timeline(said)] == [1, 2, 3, 6, 7, 8], "the resume says which checkpoint"
    # The checkpoint's own event lost too: keep what happened up to its frame count.
    assert [e.seq for e in timeline([e for e in events if e.seq != 3])] == [1, 2, 4, 6, 7, 8]


def test_the_bar_moves_by_the_frames_each_run_reports():
    progress = queue.Queue()
    # Run a reports two rollouts; run b resumes from a checkpoint at 128 after reporting 256.
    for item in [("a", 128), ("b", 256), ("a", 256), ("b", 128), ("b", 384)]:
        progress.put(item)
    frames = {"a": 0, "b": 0}
    bar = tqdm(total=1024, file=io.StringIO())
    _drain(progress, frames, bar)
    assert frames == {"a": 256, "b": 384} and bar.n == 640


def test_list_shows_every_run_of_a_spec_and_its_state(tmp_path, capsys):
    assert main(["list", "quick", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(SPECS["quick"].runs()) + 1 and lines[0].endswith("todo\t0/4,096 frames")
    assert json.loads((tmp_path / "spec.json").read_text())["name"] == "quick"


def test_the_teacher_alone_runs_its_own_budget_and_is_censored_at_the_levels():
    from dataclasses import replace

    from study.aggregate import METRICS

    level = replace(TINY_LEVEL, total_timesteps=512, teacher_timesteps=128)
    spec = StudySpec(name="t", description="", levels=(level,), modes=("ppo", "teacher"), seeds=(0,), settings=SPEC.settings)
    spec.validate()
    assert spec.config(level, "teacher", 0).total_timesteps == 128
    assert spec.config(level, "ppo", 0).total_timesteps == 512
    assert [key.timesteps for key in spec.runs()] == [512, 128]
    never = type("Run", (), {"key": RunKey(level, "teacher", 0), "summary": {"frames_to_threshold": None}})()
    frames = next(m for m in METRICS if m.name == "frames_to_threshold")
    assert frames.value(never) == 512, "a teacher that never reached the threshold counts as the full budget"
    with pytest.raises(ValueError, match="not a multiple of a rollout"):
        replace(spec, levels=(replace(level, teacher_timesteps=200),)).validate()


def test_a_mode_with_subgoals_runs_that_mode_with_subgoal_guidance():
    spec = StudySpec(name="t", description="", levels=(TINY_LEVEL,), modes=("ppo", "bidirectional-subgoals"),
                     seeds=(0,), settings=SPEC.settings)
    spec.validate()
    config = spec.config(TINY_LEVEL, "bidirectional-subgoals", 0)
    assert config.mode.value == "bidirectional" and config.guidance_kind.value == "subgoals"
    assert spec.config(TINY_LEVEL, "ppo", 0).guidance_kind.value == "actions"
    assert RunKey(TINY_LEVEL, "bidirectional-subgoals", 0).name.split("/")[1] == "bidirectional-subgoals"
    with pytest.raises(ValueError):
        StudySpec(name="t", description="", levels=(TINY_LEVEL,), modes=("teacher-subgoals",), seeds=(0,),
                  settings=SPEC.settings).validate()


def test_a_level_runs_its_own_modes_and_an_older_spec_file_still_loads():
    from dataclasses import replace

    subgoal_level = replace(TINY_LEVEL, env_id="BabyAI-OpenRedDoor-v0", guidance_kind="subgoals",
                            modes=("ppo", "bidirectional-subgoals", "oracle-subgoals"))
    spec = StudySpec(name="t", description="", levels=(TINY_LEVEL, subgoal_level), modes=("ppo", "oracle"),
                     seeds=(0, 1), settings=SPEC.settings)
    spec.validate()
    assert [k.name for k in spec.runs() if k.seed == 0] == [
        "BabyAI-GoToRedBallNoDists-v0/ppo/seed-0", "BabyAI-GoToRedBallNoDists-v0/oracle/seed-0",
        "BabyAI-OpenRedDoor-v0/ppo/seed-0", "BabyAI-OpenRedDoor-v0/bidirectional-subgoals/seed-0",
        "BabyAI-OpenRedDoor-v0/oracle-subgoals/seed-0",
    ]
    assert subgoal_level.arm("bidirectional") == "bidirectional-subgoals" and subgoal_level.arm("ppo") == "ppo"
    assert StudySpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    # spec.json written before levels had modes and a guidance kind of their own
    old = spec.to_dict()
    for level in old["levels"]:
        del level["modes"], level["guidance_kind"]
    loaded = StudySpec.from_dict(old)
    assert loaded.levels[1].modes is None and loaded.levels[1].guidance_kind == "actions"
    assert len(loaded.runs()) == 8


def test_every_named_study_is_valid_and_runs_both_guidance_kinds():
    for spec in SPECS.values():
        spec.validate()
        kinds = {spec.config(k.level, k.mode, 0).guidance_kind.value for k in spec.runs() if k.mode not in ("ppo", "teacher")}
        assert kinds == {"actions", "subgoals"}, spec.name
        for level in spec.levels:
            modes = spec.modes_of(level)
            assert {"ppo", level.arm("bidirectional"), level.arm("oracle")} <= set(modes), (spec.name, level.env_id)
