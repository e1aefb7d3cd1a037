"""The report: aggregates, tests and failure analysis on hand-made runs with known answers,
then the whole report (study.json, figures, README section) on the tiny real study, with a
browser for kaleido and without."""

import json
from dataclasses import replace

import numpy as np
import pytest

from study import figures
from study.aggregate import aggregate
from study.data import RunData, StudyData
from study.failures import analyse, feedback_verdicts, plan_outcomes, situation_outcomes
from study.figures import NO_CHROME, band
from study.report import BEGIN, END, replace_section, write_report
from study.spec import RunKey, StudySpec
from tests.browser import needs_chromium
from tests.study.tiny import TINY_LEVEL, TINY_SETTINGS, shared_study
from workers.feedback import FeedbackMemory

ACTIONS = ("left", "right", "forward")


def hint(key, answer, feedback_action=None):
    distribution = {a: (0.8 if a == answer else 0.1) for a in ACTIONS}
    memory = FeedbackMemory(ACTIONS)
    feedback = None
    if feedback_action is not None:
        memory.load_state_dict({key: {"count": [0, 0, 0], "mean": [0.0] * 3, "verdict": ACTIONS.index(feedback_action)}})
        feedback = memory.sentence(key)
    return {"situation_key": key, "situation": f"text of {key}", "distribution": distribution, "feedback": feedback}


def run(mode, seed, auc, reached=None, hints=(), acc=(None, None), level=TINY_LEVEL):
    x = np.array([128.0, 256.0])
    return RunData(
        key=RunKey(level, mode, seed),
        summary={"frames_to_threshold": reached, "final_eval_return": auc, "final_eval_success": 1.0, "final_eval_sampled_return": auc,
                 "teacher_accuracy_start": acc[0], "teacher_accuracy_end": acc[1], "llm_calls": 0},
        returns=(x, np.array([auc, auc])),
        accuracy=(np.empty(0), np.empty(0)),
        hints=list(hints),
        teacher_fault=None,
        wall_s_to_threshold=None,
    )


def test_feedback_sentences_map_back_to_their_action():
    verdicts = feedback_verdicts(ACTIONS)
    assert sorted(verdicts.values()) == sorted(ACTIONS)
    assert verdicts[hint("k", "left", "forward")["feedback"]] == "forward"


def test_each_situation_gets_its_outcome_and_cause():
    right = {"k1": "forward", "k2": "left", "k3": "right", "k4": "forward"}
    uniform = {**hint("k1", "left"), "distribution": {a: 1 / 3 for a in ACTIONS}}
    hints = [
        uniform,  # the teacher had not answered yet: ignored
        hint("k1", "left"), hint("k1", "forward", "forward"),  # fixed by right feedback
        hint("k2", "left"), hint("k2", "left"),  # right throughout
        hint("k3", "left"), hint("k3", "left", "left"),  # the student's verdict is wrong
        hint("k4", "left"), hint("k4", "right", "forward"),  # right verdict, ignored
        hint("k5", "left"),  # no bot action known there: not judged
        hint("k6", "left"),
    ]
    outcomes = situation_outcomes(run("bidirectional", 0, 0.5, hints=hints), {**right, "k6": "right"}, feedback_verdicts(ACTIONS))
    rows = {r["key"]: r for r in outcomes}
    assert set(rows) == {"k1", "k2", "k3", "k4", "k6"}
    assert [(rows[k]["outcome"], rows[k]["cause"]) for k in ("k1", "k2", "k3", "k4", "k6")] == [
        ("fixed", None), ("right", None), ("stays_wrong", "wrong_verdict"), ("stays_wrong", "ignored"),
        ("stays_wrong", "no_verdict"),
    ]


def test_tests_and_seed_view_on_known_runs():
    spec = StudySpec(name="t", description="t", levels=(TINY_LEVEL,), modes=("ppo", "bidirectional"), seeds=(0, 1, 2),
                     settings=TINY_SETTINGS)
    runs = [run("ppo", s, a, reached=128) for s, a in enumerate([0.6, 0.7, 0.8])]
    runs += [run("bidirectional", s, a, reached=None, acc=(0.2, 0.5)) for s, a in enumerate([0.1, 0.2, 0.75])]
    data = StudyData(spec=spec, runs=runs, missing=[], invocations=[])
    aggregates = aggregate(data, reps=200)
    level = aggregates["levels"][0]
    assert level["modes"]["ppo"]["reached"] == 3 and level["modes"]["bidirectional"]["reached"] == 0
    frames = level["modes"]["bidirectional"]["metrics"]["frames_to_threshold"]
    assert frames["value"] == frames["low"] == frames["high"] == 256, "censored at the budget"
    tests = {(t["metric"], t["other"]): t for t in level["tests"]}
    auc = tests[("auc", "ppo")]
    # Bidirectional wins 2 of the 9 pairs (0.75 against 0.6 and 0.7).
    assert auc["a12"] == pytest.approx(2 / 9) and auc["exact"] and auc["p_holm"] == pytest.approx(auc["p_value"])
    frames_test = tests[("frames_to_threshold", "ppo")]
    assert frames_test["a12"] == 0.0 and frames_test["p_value"] == pytest.approx(0.1)  # 1 split in 20, two-sided
    failures = analyse(data, aggregates)["levels"][0]
    assert {t["metric"] for t in failures["losses"]} == {"auc", "final_eval_return", "final_eval_sampled_return", "frames_to_threshold"}
    assert [s["lost_to"] for s in failures["seeds"]] == [["ppo"], ["ppo"], ["ppo"]]
    assert failures["seeds"][2]["auc"] == pytest.approx(0.75)
    assert failures["situations"]["judged"] == 0
    # PPO reached at 128 frames, bidirectional never (censored at 256): at most half as fast.
    speedup = level["speedups"]["bidirectional"]
    assert (speedup["value"], speedup["low"], speedup["high"], speedup["bound"]) == (0.5, 0.5, 0.5, "upper")
    assert level["oracle_shares"] == {}, "no oracle ran"


def test_speedups_and_the_share_of_the_oracles_gain_on_known_runs():
    level = replace(TINY_LEVEL, total_timesteps=4096, guidance_kind="subgoals",
                    modes=("ppo", "unidirectional-subgoals", "bidirectional-subgoals", "oracle-subgoals"))
    spec = StudySpec(name="t", description="t", levels=(level,), seeds=(0, 1, 2), settings=TINY_SETTINGS)
    frames = {"ppo": [None, None, None], "unidirectional-subgoals": [None, 4096, None],
              "bidirectional-subgoals": [2048, 2048, 2048], "oracle-subgoals": [1024, 1024, 1024]}
    runs = [run(mode, s, 0.5, reached=f, level=level) for mode, fs in frames.items() for s, f in enumerate(fs)]
    aggregates = aggregate(StudyData(spec=spec, runs=runs, missing=[], invocations=[]), reps=200)
    level_row = aggregates["levels"][0]
    assert level_row["tested_mode"] == "bidirectional-subgoals"
    assert {t["other"] for t in level_row["tests"]} == {"ppo", "unidirectional-subgoals", "oracle-subgoals"}
    speedups, shares = level_row["speedups"], level_row["oracle_shares"]
    # PPO never reached the threshold: 4096 frames is a floor, so every speed-up is a lower bound.
    assert speedups["bidirectional-subgoals"]["value"] == 2.0 and speedups["bidirectional-subgoals"]["bound"] == "lower"
    assert speedups["oracle-subgoals"]["value"] == 4.0
    assert speedups["unidirectional-subgoals"]["bound"] == "unknown", "censored on both sides"
    bi = shares["bidirectional-subgoals"]
    assert bi["value"] == pytest.approx((4096 - 2048) / (4096 - 1024)) and bi["low"] == bi["high"] == bi["value"]
    assert bi["oracle"] == "oracle-subgoals" and bi["bound"] == "lower"
    # Every unidirectional run counts 4096 frames, PPO's too: no gain, and its resamples agree.
    assert shares["unidirectional-subgoals"]["value"] == 0.0
    # A mode faster than the oracle: a PPO that would need more frames would make the share
    # smaller (closer to 1), so the estimate is an upper bound.
    faster = [run("bidirectional-subgoals", s, 0.5, reached=512, level=level) for s in range(3)]
    runs = [r for r in runs if r.key.mode != "bidirectional-subgoals"] + faster
    share = aggregate(StudyData(spec=spec, runs=runs, missing=[], invocations=[]), reps=200)["levels"][0][
        "oracle_shares"]["bidirectional-subgoals"]
    assert share["value"] == pytest.approx((4096 - 512) / (4096 - 1024)) and share["bound"] == "upper"
    assert set(aggregates["overall"]) == {"ppo", "unidirectional", "bidirectional", "oracle"}


def test_each_plan_state_gets_its_outcome_and_cause():
    def plan_hint(state, subgoal, feedback=None):
        return {"situation_key": "k", "plan": {"state": state, "subgoal": subgoal, "feedback": feedback}}

    failed = "Feedback from the student: these did not work here: {}: tried 3 times, it did not work."
    hints = [
        plan_hint("s1", None),  # no plan yet: ignored
        plan_hint("s1", "open the red door"), plan_hint("s1", "pick up the red key", failed.format("open the red door")),
        plan_hint("s2", "open the red door"), plan_hint("s2", "open the red door", failed.format("go to the red key")),
        plan_hint("s3", "go to the door"),  # no colour: the engine's plan accuracy counts it as the bot's
        plan_hint("s5", "open the red door", failed.format("pick up the red key")),
        plan_hint("s4", "go to the red key"),  # no bot subgoal known there: not judged
    ]
    right = {"s1": "pick up the red key", "s2": "pick up the red key", "s3": "go to the red door",
             "s5": "pick up the red key"}
    rows = {r["key"]: r for r in plan_outcomes(run("bidirectional-subgoals", 0, 0.5, hints=hints), right)}
    assert set(rows) == {"s1", "s2", "s3", "s5"}
    assert [(rows[k]["outcome"], rows[k]["cause"]) for k in ("s1", "s2", "s3", "s5")] == [
        ("fixed", None), ("stays_wrong", "feedback_ignored"), ("right", None), ("stays_wrong", "wrong_feedback"),
    ]
    assert plan_outcomes(run("bidirectional-subgoals", 0, 0.5, hints=[plan_hint("s2", "open the red door")]), right)[0][
        "cause"] == "no_feedback"


@pytest.fixture(params=[pytest.param("browser", marks=[pytest.mark.browser, needs_chromium]), "no browser"])
def report(request, tmp_path_factory, tmp_path, monkeypatch, capsys):
    """(report, root, browser, stderr) of the tiny study's report written under ``tmp_path``:
    with kaleido's browser, and as if there were none (where a PNG an earlier report left waits)."""
    browser = request.param == "browser"
    out = shared_study(tmp_path_factory)
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{BEGIN}\nold\n{END}\n\n## Layout\n")
    docs = tmp_path / "docs" / "results"
    if not browser:
        monkeypatch.setattr(figures, "chrome_path", lambda: None)
        docs.mkdir(parents=True)
        (docs / "returns.png").write_bytes(b"\x89PNG\r\n\x1a\n an earlier study's")
    report = write_report(out, docs=docs, readme=readme)
    return report, tmp_path, browser, capsys.readouterr().err


def test_report_writes_study_json_figures_and_the_readme_section(report):
    report, root, browser, stderr = report
    docs = root / "docs" / "results"
    saved = json.loads((docs / "study.json").read_text())
    assert {"spec", "runs", "aggregates", "failures", "machine", "commands", "wall_s", "generated", "power"} <= set(saved)
    assert len(saved["runs"]) == 4 and saved["missing"] == [] and saved["commands"][0] == "pytest"
    assert saved["machine"]["cpu_count"] >= 1 and saved["machine"]["torch"]
    for name in ("returns", "teacher_accuracy", "speedup"):
        assert (docs / f"{name}.html").stat().st_size > 1000
    text = (root / "README.md").read_text()
    assert text.startswith("# title\n\n" + BEGIN) and text.endswith(END + "\n\n## Layout\n") and "\nold\n" not in text
    assert "## Results" in text and "| mode | runs | reached | frames to threshold |" in text
    assert "](docs/results/returns.html)" in text and "Wall time" in text and "`pytest`" in text
    # The tiny study runs PPO alone and the oracle: the oracle's speed-up, no share without a teacher.
    oracle_row = next(line for line in text.splitlines() if line.startswith("| BabyAI-GoToRedBallNoDists-v0 | oracle |"))
    assert "× [" in oracle_row and oracle_row.endswith("| — |") and "share of the oracle's gain |" in text
    ppo = report["aggregates"]["levels"][0]["modes"]["ppo"]
    assert ppo["runs"] == 2 and ppo["metrics"]["final_eval_return"]["n"] == 2
    assert ppo["metrics"]["final_eval_sampled_return"]["n"] == 2, "the sampled evaluation is reported too"
    assert "| final eval return, sampled |" in text
    assert ppo["metrics"]["teacher_accuracy_end"]["value"] is None
    if browser:
        for name in ("returns", "teacher_accuracy", "speedup"):
            assert (docs / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f"](docs/results/{name}.png)" in text
        assert NO_CHROME not in stderr
    else:
        assert stderr.count(NO_CHROME) == 1, stderr
        assert not list(docs.glob("*.png")), "the earlier study's PNG is removed, none is written"
        assert saved["figures"] == ["returns.html", "teacher_accuracy.html", "speedup.html"]
        assert ".png" not in text and "No PNG figures" in text


def test_readme_without_markers_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="no <!-- study:begin -->"):
        replace_section(readme, "x")


def test_curve_band_aligns_seeds_and_skips_points_some_seed_lacks():
    grid = np.array([100.0, 200.0, 300.0, 400.0])
    curves = [(np.array([100.0, 400.0]), np.array([0.0, 0.6])), (np.array([200.0, 400.0]), np.array([0.2, 0.6]))]
    x, mid, low, high = band(curves, grid)
    # At 100 the second seed has no value yet; at 200 the first is interpolated to 0.2.
    assert x.tolist() == [200.0, 300.0, 400.0]
    assert mid == pytest.approx([0.2, 0.4, 0.6]) and low == pytest.approx(mid) and high == pytest.approx(mid)
