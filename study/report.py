"""The study's report: ``study.json`` and the figures in ``docs/results/``, and the README's
"Results" section, regenerated between ``<!-- study:begin -->`` and ``<!-- study:end -->``
from that data alone (never typed by hand).

``study.json`` holds the spec, every finished run's summary (with its return AUC), the
aggregates (``study.aggregate``), the failure analysis (``study.failures``), the power of the
tests, the machine and versions the runs ran on, the commands that ran them, their wall time,
the date, and the figure files written (no PNGs where kaleido found no browser:
``study.figures.write_figures``).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from study import stats
from study.aggregate import METRIC, METRICS, aggregate
from study.data import StudyData, load_study
from study.failures import analyse
from study.figures import BOUND_MARK, write_figures

BEGIN, END = "<!-- study:begin -->", "<!-- study:end -->"
BOOTSTRAP_REPS = 2000
"""Resamples of every bootstrap interval."""
POWER_SHIFTS_SD = (1.0, 2.0)
"""Effect sizes (in standard deviations) at which the report states the tests' power."""


def build(data: StudyData) -> dict[str, Any]:
    """Everything the report shows, JSON-able."""
    aggregates = aggregate(data, reps=BOOTSTRAP_REPS)
    first = data.spec.levels[0]
    config = data.spec.config(first, data.spec.modes_of(first)[0], data.spec.seeds[0])
    n = len(data.spec.seeds)
    last = data.invocations[-1] if data.invocations else {}
    return {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "spec": data.spec.to_dict(),
        "commands": sorted({i["command"] for i in data.invocations if i.get("command")}),
        "invocations": data.invocations,
        "wall_s": round(sum(i["wall_s"] for i in data.invocations), 1),
        "machine": last.get("machine"),
        "teacher_model": config.teacher_model,
        "eval_episodes": config.eval_episodes,
        "bootstrap_reps": BOOTSTRAP_REPS,
        "runs": [
            {
                **run.summary,
                "auc": METRIC["auc"].value(run),
                "wall_s_to_threshold": run.wall_s_to_threshold,
                "teacher_fault": run.teacher_fault,
                "directory": run.key.name,
            }
            for run in data.runs
        ],
        "planned_runs": len(data.spec.runs()),
        "missing": data.missing,
        "aggregates": aggregates,
        "failures": analyse(data, aggregates),
        "power": {
            "n_per_mode": n,
            "min_p": stats.min_p_value(n, n),
            "alpha": 0.05,
            "shifts": {str(s): stats.rank_test_power(n, n, s) for s in POWER_SHIFTS_SD},
        },
    }


# --- formatting -----------------------------------------------------------------------------


def _num(value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    if metric in ("frames_to_threshold", "llm_calls"):
        return f"{value:,.0f}"
    return f"{value:.3f}" if metric in ("auc", "final_eval_return", "final_eval_sampled_return") else f"{value:.2f}"


def _estimate(est: dict[str, Any], metric: str) -> str:
    if est["value"] is None:
        return "—"
    return f"{_num(est['value'], metric)} [{_num(est['low'], metric)}, {_num(est['high'], metric)}]"


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _teacher_budget_line(level: dict[str, Any]) -> list[str]:
    budget = level.get("teacher_budget", level["budget"])
    if budget == level["budget"]:
        return []
    return [
        f"The teacher alone runs {budget:,} frames: it learns nothing, so more frames would not change its return "
        "(its frames to threshold are censored at the full budget, like every mode's).",
        "",
    ]


def _fault_lines(runs: list[dict[str, Any]]) -> list[str]:
    faulty = [r for r in runs if r["teacher_fault"]]
    if not faulty:
        return []
    listed = "; ".join(f"{r['directory']} ({r['teacher_fault']})" for r in faulty)
    return [f"- **Caveat**: the teacher failed during {len(faulty)} run(s), which had no teacher from then on: {listed}."]


def _level_tables(level: dict[str, Any]) -> list[str]:
    header = ["mode", "runs", "reached", *(m.label for m in METRICS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for mode, row in level["modes"].items():
        cells = [mode, str(row["runs"]), f"{row['reached']}/{row['runs']}"]
        cells += [_estimate(row["metrics"][m.name], m.name) for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    tested = level["tested_mode"]
    if not level["tests"]:
        lines += [f"No test: a comparison needs at least two finished runs of {tested or 'bidirectional'} and of the "
                  "other mode.", ""]
        return lines
    lines += [
        f"{tested} against each other mode (A12 > 0.5: {tested} better; Holm-adjusted over the modes):",
        "",
        f"| metric | vs | {tested} | other | A12 | p | p (Holm) |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in level["tests"]:
        lines.append(
            f"| {METRIC[t['metric']].label} | {t['other']} | {_num(t['iqm_mode'], t['metric'])} | "
            f"{_num(t['iqm_other'], t['metric'])} | {t['a12']:.2f} | {_p(t['p_value'])} | {_p(t['p_holm'])} |"
        )
    lines.append("")
    return lines


def _speedup_lines(levels: list[dict[str, Any]]) -> list[str]:
    """The headline table: every mode's speed-up against PPO alone and share of the oracle's gain."""
    lines = [
        "| level | mode | reached | frames to threshold | speed-up vs PPO alone | share of the oracle's gain |",
        "|---|---|---|---|---|---|",
    ]
    for level in levels:
        for mode, row in level["modes"].items():
            speedup, share = level["speedups"].get(mode), level["oracle_shares"].get(mode)
            cells = [
                level["env_id"], f"**{mode}**" if mode == level["tested_mode"] else mode, f"{row['reached']}/{row['runs']}",
                _estimate(row["metrics"]["frames_to_threshold"], "frames_to_threshold"),
                _ratio(speedup, "×") if speedup else "—", _ratio(share, "") if share else "—",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _ratio(est: dict[str, Any], unit: str) -> str:
    if est["value"] is None:
        return "—"
    interval = f" [{est['low']:.2f}, {est['high']:.2f}]" if est["low"] is not None else " [no CI]"
    return f"{BOUND_MARK[est['bound']]}{est['value']:.2f}{unit}{interval}"


def _failure_lines(level: dict[str, Any]) -> list[str]:
    mode = level["mode"]
    lines = [f"**{level['env_id']}** ({mode})", ""]
    losses = level["losses"]
    if losses:
        worse = "; ".join(
            f"{METRIC[t['metric']].label} vs {t['other']} ({_num(t['iqm_mode'], t['metric'])} against "
            f"{_num(t['iqm_other'], t['metric'])}, A12 {t['a12']:.2f}, p {_p(t['p_value'])})"
            for t in losses
        )
        lines += [f"- Tests where {mode} comes out worse: {worse}.", ""]
    else:
        lines += [f"- No test where {mode} comes out worse.", ""]
    if level["seeds"]:
        lines += [
            f"| seed | {mode} AUC | reached threshold | teacher acc. start → end | modes with a higher AUC on this seed |",
            "|---|---|---|---|---|",
        ]
        for s in level["seeds"]:
            acc = f"{_num(s['teacher_accuracy_start'], 'acc')} → {_num(s['teacher_accuracy_end'], 'acc')}"
            lines.append(
                f"| {s['seed']} | {_num(s['auc'], 'auc')} | {'yes' if s['reached'] else 'no'} | {acc} | "
                f"{', '.join(s['lost_to']) or 'none'} |"
            )
        lines.append("")
    sit = level["situations"]
    plans = sit["kind"] == "subgoals"
    if sit["judged"]:
        outcomes, causes = sit["outcomes"], sit["causes"]
        if plans:
            judged = f"Plan states in the {mode} runs' hints, judged against the BabyAI bot's subgoal"
            pairs, probes, answer = "(run, plan state)", "plan probes", "subgoal"
            why = (f"no feedback on that state yet {causes.get('no_feedback', 0)}, the student reported the bot's "
                   f"subgoal failing there {causes.get('wrong_feedback', 0)}, feedback on other subgoals read and "
                   f"another chosen {causes.get('feedback_ignored', 0)}")
        else:
            judged = f"Situations in the {mode} runs' hints, judged against the BabyAI bot"
            pairs, probes, answer = "(run, situation)", "probe states", "answer"
            why = (f"no feedback there {causes.get('no_verdict', 0)}, the student's verdict named another action than "
                   f"the bot {causes.get('wrong_verdict', 0)}, right verdict ignored {causes.get('ignored', 0)}")
        lines += [
            f"- {judged}: {sit['judged']} {pairs} pairs covering {sit['coverage']:.0%} of the {probes} per run. The "
            f"teacher's {answer} was right throughout in {outcomes.get('right', 0)}, fixed by the feedback in "
            f"{outcomes.get('fixed', 0)}, stayed wrong in {outcomes.get('stays_wrong', 0)} and turned wrong in "
            f"{outcomes.get('broken', 0)}. Why the last {answer} was wrong: {why}.",
            "",
        ]
    if sit["worst"]:
        lines += [
            f"| {'plan state' if plans else 'situation'} (the teacher's text) | bot | teacher's last "
            f"{'subgoal' if plans else 'answer'} | why | seeds | share of probe states |",
            "|---|---|---|---|---|---|",
        ]
        for w in sit["worst"]:
            answers = ", ".join(f"{a} ×{k}" for a, k in w["answers"].items())
            causes = ", ".join(f"{c.replace('_', ' ')} ×{k}" for c, k in w["causes"].items())
            text = w["situation"].replace("|", "/")
            lines.append(
                f"| {text} | {w['bot']} ({w['bot_agreement']:.0%}) | {answers} | {causes} | "
                f"{', '.join(map(str, w['seeds']))} | {w['probe_share']:.1%} |"
            )
        lines.append("")
    return lines


FIGURES = (
    ("returns", "Training return per level",
     "training return, IQM across seeds with its 95 % bootstrap band; the dashed line is the level's threshold."),
    ("teacher_accuracy", "Teacher accuracy per level",
     "the teacher's accuracy on the probe states during training (with subgoal guidance: the share of plan probes "
     "where its subgoal is the bot's), unidirectional (the teacher never hears back) against bidirectional."),
    ("speedup", "Speed-up and share of the oracle's gain per level and mode",
     "PPO alone's frames to threshold over each mode's (IQMs; log axis), and the share of the oracle's gain "
     "(F_ppo − F_mode) / (F_ppo − F_oracle), with 95 % bootstrap CIs; ≥ marks a lower bound, ≤ an upper one, ? a "
     "value that censored runs could move either way (runs that never reached the threshold count as the budget)."),
)
"""(name, image alt text, caption) of each figure ``study.figures.write_figures`` writes."""


def _figure_lines(written: list[str], links: str) -> list[str]:
    """Each figure's PNG where it was written (never a link to a missing image) and its HTML."""
    lines = []
    for name, alt, caption in FIGURES:
        if f"{name}.png" in written:
            lines += [f"![{alt}]({links}/{name}.png)", ""]
        lines += [f"[interactive]({links}/{name}.html): {caption}", ""]
    if not any(f.endswith(".png") for f in written):
        lines += ["No PNG figures: this report was written where kaleido found no Chrome/Chromium.", ""]
    return lines


def _where_lines(report: dict[str, Any]) -> list[str]:
    """Wall time and where the runs ran: this machine (the local runner) or the lab's Celery
    workers (``study.lab``, whose invocations name no machine)."""
    invocations = report["invocations"]
    last = invocations[-1] if invocations else {}
    wall = f"- Wall time: {_duration(report['wall_s'])} over {len(invocations)} invocation(s), "
    if last.get("backend") == "celery":
        hosts = ", ".join(last.get("worker_hosts") or []) or "?"
        return [wall + f"the runs trained on the dashboard's Celery workers ({hosts}), queue waits included; "
                f"teacher {report['teacher_model']}."]
    machine = report["machine"] or {}
    return [
        wall + f"{last.get('workers', '?')} runs at a time.",
        f"- Machine: {machine.get('cpu', '?')}, {machine.get('cpu_count', '?')} cores, {machine.get('platform', '?')}; "
        f"Python {machine.get('python', '?')}, torch {machine.get('torch', '?')}, stable-baselines3 "
        f"{machine.get('stable-baselines3', '?')}, llama-cpp-python {machine.get('llama-cpp-python', '?')}; "
        f"teacher {report['teacher_model']}.",
    ]


def section(report: dict[str, Any], readme: Path, docs: Path) -> str:
    """The README's Results section (markers included) for ``report``."""
    spec = report["spec"]
    links = Path(os.path.relpath(docs, readme.parent)).as_posix()
    lines = [
        BEGIN,
        "## Results",
        "",
        "<!-- Generated by study/report.py from docs/results/study.json; `make study` rewrites this section. -->",
        "",
        f"**Study `{spec['name']}`**: {spec['description']} {len(spec['levels'])} level(s), each with its modes, × "
        f"{len(spec['seeds'])} seeds (seeds {', '.join(map(str, spec['seeds']))}); {len(report['runs'])} of "
        f"{report['planned_runs']} runs "
        f"finished{' (missing: ' + ', '.join(report['missing']) + ')' if report['missing'] else ''}.",
        "",
        "- Command: " + ", then ".join(f"`{c}`" for c in report["commands"])
        + " (`make study` runs `python -m study run full`, `make study-quick` runs `python -m study run quick`).",
        *_where_lines(report),
        f"- Date: {report['generated'][:10]}. Data: [`study.json`]({links}/study.json) (every run's summary too).",
        *_fault_lines(report["runs"]),
        "",
        f"Each cell: IQM over seeds [stratified percentile bootstrap 95 % CI, {report['bootstrap_reps']:,} resamples] "
        "(`study/stats.py`). "
        "Frames to threshold: the first frame at which the training return (last 100 episodes) reached the level's "
        "threshold; runs that never did count as the budget (censored, so such a cell is a lower bound). Return AUC: "
        f"the mean training return over the run. Final eval: {report['eval_episodes']} episodes on held-out seeds, greedy "
        "(the policy's most likely action) and sampled from the policy. "
        "Teacher accuracy: "
        "agreement with the BabyAI bot on the run's probe states (with subgoal guidance, a mode named `…-subgoals`: "
        "the share of plan probes where the teacher's subgoal is the bot's). Tests: two-sided permutation test of the "
        "Mann-Whitney statistic (exact: every split of the pooled runs), effect size A12.",
        "",
        "### Speed-up against PPO alone",
        "",
        "Per level, PPO alone's frames to threshold over each mode's (IQMs), and the share of the oracle's gain that a "
        "teacher-guided mode captures, (F_ppo − F_mode) / (F_ppo − F_oracle) with the oracle of the same guidance kind "
        "(1: all of it; 0: none; below 0: slower than PPO alone); 95 % CIs from resampling each mode's runs on its own "
        f"({report['bootstrap_reps']:,} times; no CI where some resample leaves the share undefined). Runs that never "
        "reached the threshold count as the budget, which bounds what they enter: ≥ marks a lower bound (for the "
        "speed-up: PPO alone's runs were censored), ≤ an upper one (the mode's own were), ? a value they could move "
        "either way. In bold, the level's bidirectional mode with the guidance kind the spec gives the level: the "
        "one tested below.",
        "",
        *_speedup_lines(report["aggregates"]["levels"]),
    ]
    for level in report["aggregates"]["levels"]:
        lines += [
            f"### {level['env_id']}: threshold {level['return_threshold']}, {level['budget']:,} frames per run",
            "",
            *_teacher_budget_line(level),
            f"Why this level: {level['why']}.",
            "",
            *_level_tables(level),
        ]
    overall = report["aggregates"]["overall"]
    pooled = [m for m in METRICS if m.across_levels]
    lines += [
        "### All levels pooled",
        "",
        "IQM over every run of the mode on every level (with each level's guidance kind), bootstrap stratified by "
        "level:",
        "",
        "| mode | " + " | ".join(m.label for m in pooled) + " |",
        "|---|" + "---|" * len(pooled),
        *(f"| {mode} | " + " | ".join(_estimate(row[m.name], m.name) for m in pooled) + " |" for mode, row in overall.items()),
        "",
        "### Figures",
        "",
        *_figure_lines(report["figures"], links),
        "### Where the bidirectional mode loses",
        "",
        "Computed by `study/failures.py` from the runs' summaries and hint events; the bot's action per situation "
        "(its subgoal per plan state, with subgoal guidance) comes from the same probe states the engine measures "
        "teacher accuracy on.",
        "",
    ]
    for level in report["failures"]["levels"]:
        lines += _failure_lines(level)
    power = report["power"]
    shifts = ", ".join(f"{p:.0%} for a shift of {s} standard deviation(s)" for s, p in power["shifts"].items())
    lines += [
        "### What the tests can detect",
        "",
        f"With {power['n_per_mode']} seeds per mode the smallest p-value any outcome can give is {power['min_p']:.4f}; "
        f"the probability of p < {power['alpha']} is {shifts} (simulated normal samples, `stats.rank_test_power`). "
        "A p-value above 0.05 here is therefore weak evidence of no difference.",
        END,
    ]
    return "\n".join(lines) + "\n"


def replace_section(readme: Path, text: str) -> None:
    """Put ``text`` in place of the README's marked section (raises ValueError without markers)."""
    current = readme.read_text(encoding="utf-8")
    start, end = current.find(BEGIN), current.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{readme} has no {BEGIN} ... {END} section to regenerate")
    end += len(END)
    if current[end : end + 1] == "\n":
        end += 1
    readme.write_text(current[:start] + text + current[end:], encoding="utf-8")


def write_report(out: Path, *, docs: Path, readme: Path | None) -> dict[str, Any]:
    """study.json and the figures into ``docs``, and the Results section into ``readme``."""
    data = load_study(out)
    report = build(data)
    report["figures"] = [path.name for path in write_figures(data, report["aggregates"], docs)]
    (docs / "study.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    if readme is not None:
        replace_section(readme, section(report, readme, docs))
    return report
