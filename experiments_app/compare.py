"""What the compare page shows, built on the server: each run's curve (downsampled, smoothed),
each experiment's mean ± 95% band across its seeds, the summary table and the config diff.

The page, its JSON and its CSV exports all come from ``comparison_build``, so an export is
exactly what is shown, and the URL's query string (runs, experiments, metric, smoothing)
rebuilds the same view.

Curves are downsampled in the database (``selectors.metric_curves``): a run of more events
than ``analysis.points_per_curve`` allows (500, fewer when many runs share the chart) is drawn
as chunks of consecutive events, each its mean with its minimum and maximum, so the page
never loads every point. Smoothing, the bands and the
area under the curve are computed on those points (exact for a run drawn whole). As in
W&B's and MLflow's chart exports, the exports hold the downsampled points; a run's every
point is in the API (``/api/runs/<id>/metrics/``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.contrib.auth.base_user import AbstractBaseUser

from experiments_app import analysis, selectors
from experiments_app.models import Experiment, Run

MAX_COMPARE_RUNS = 100
"""More runs than this on one chart is unreadable, and the payload grows with it."""

RUN_FIELDS = ("final_eval_return", "frames_to_0_9", "auc", "teacher_accuracy_start", "teacher_accuracy_end", "llm_calls")
"""The summary table's columns. ``auc`` is computed here (area under the training return
curve, as its average height); the others are the engine's summary of a finished run."""

SUMMARY_KEYS = tuple(f for f in RUN_FIELDS if f != "auc")


class TooManyRuns(ValueError):
    """The selection holds more than MAX_COMPARE_RUNS runs."""


def run_label(run: Run) -> str:
    return f"{run.experiment.name} · seed {run.seed}"


def experiment_label(experiment: Experiment) -> str:
    """Names are not unique: the id tells two experiments of the same name apart."""
    return f"{experiment.name} (#{experiment.pk})"


def experiment_config(experiment: Experiment) -> dict[str, Any]:
    """Everything that decides what the experiment's runs do, but the seed."""
    return {
        "env_id": experiment.env_id,
        "mode": experiment.mode,
        "teacher_model": experiment.teacher_model,
        **experiment.hyperparameters,
    }


def _curve_payload(curve: selectors.Curve | None, smoothed: np.ndarray | None) -> dict[str, Any]:
    """The run's downsampled curve: ``raw`` the mean of each point's events, ``min``/``max``
    their least and greatest values (None when every point is one event), ``smoothed`` at the
    same steps, ``points`` how many events the curve stands for."""
    if curve is None:
        return {"x": [], "raw": [], "min": None, "max": None, "smoothed": None if smoothed is None else [], "points": 0}
    bucketed = bool(np.any(curve.n > 1))
    return {
        "x": np.rint(curve.x).astype(int).tolist(),
        "raw": analysis.finite_or_none(curve.y),
        "min": analysis.finite_or_none(curve.low) if bucketed else None,
        "max": analysis.finite_or_none(curve.high) if bucketed else None,
        "smoothed": analysis.finite_or_none(smoothed) if smoothed is not None else None,
        "points": int(curve.n.sum()),
    }


def _run_summary(run: Run, returns: selectors.Curve | None) -> dict[str, Any]:
    summary = run.summary or {}
    row: dict[str, Any] = {key: summary.get(key) for key in SUMMARY_KEYS}
    row["auc"] = analysis.area_under_curve(returns.x, returns.y) if returns is not None else None
    return row


def comparison_build(
    *, user: AbstractBaseUser, run_ids: Sequence[int], experiment_ids: Sequence[int], metric: str, smoothing: float
) -> dict[str, Any]:
    """The comparison of the user's runs among ``run_ids`` and of every run of the user's
    experiments among ``experiment_ids``, on ``metric`` (one of selectors.COMPARABLE) with EMA
    ``smoothing`` in [0, 1). JSON-able. Raises TooManyRuns for more than MAX_COMPARE_RUNS runs,
    having counted them only: a selection of a thousand experiments loads none of their runs."""
    chosen = selectors.compare_runs(user=user, run_ids=run_ids, experiment_ids=experiment_ids)
    count = chosen.count()
    if count > MAX_COMPARE_RUNS:
        raise TooManyRuns(f"at most {MAX_COMPARE_RUNS} runs can be compared at once ({count} chosen)")
    runs = list(chosen)
    points = analysis.points_per_curve(len(runs))
    curves = selectors.metric_curves(runs=runs, metric=metric, points=points)
    returns = curves if metric == "mean_return" else selectors.metric_curves(runs=runs, metric="mean_return", points=points)

    smoothed: dict[int, np.ndarray] = {pk: analysis.ema(curve.y, smoothing) for pk, curve in curves.items()}
    run_rows = []
    for run in runs:
        run_rows.append(
            {
                "id": run.pk,
                "label": run_label(run),
                "experiment_id": run.experiment_id,
                "seed": run.seed,
                "status": run.status,
                **_curve_payload(curves.get(run.pk), smoothed.get(run.pk, np.empty(0)) if smoothing else None),
                "summary": _run_summary(run, returns.get(run.pk)),
            }
        )

    experiments: dict[int, Experiment] = {}
    members: dict[int, list[Run]] = {}
    for run in runs:
        experiments.setdefault(run.experiment_id, run.experiment)
        members.setdefault(run.experiment_id, []).append(run)
    summaries = {row["id"]: row["summary"] for row in run_rows}
    experiment_rows = []
    for experiment_id, group in members.items():
        seeds = [(curves[r.pk].x, smoothed[r.pk]) for r in group if r.pk in curves]
        band = analysis.band(seeds)
        experiment_rows.append(
            {
                "id": experiment_id,
                "label": experiment_label(experiments[experiment_id]),
                "runs": [r.pk for r in group],
                "x": band.x.astype(int).tolist(),
                "mean": analysis.finite_or_none(band.mean),
                "lower": analysis.finite_or_none(band.lower),
                "upper": analysis.finite_or_none(band.upper),
                "summary": {
                    key: analysis.mean_interval([summaries[r.pk][key] for r in group]) for key in RUN_FIELDS
                },
            }
        )

    return {
        "metric": metric,
        "smoothing": smoothing,
        "runs": run_rows,
        "experiments": experiment_rows,
        "config_diff": analysis.config_diff(
            {experiment_label(e): experiment_config(e) for e in experiments.values()}
        ),
    }


def _format(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        # Frames read best whole; rates and learning rates need significant digits, not places.
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def comparison_tables(comparison: dict[str, Any]) -> dict[str, Any]:
    """The summary table and the config diff as rows of display strings, for the template:
    a row per run, a row per experiment (mean ± 95% half-width across its seeds, n), and one
    row per differing config key with a cell per experiment."""
    summary_rows = [
        {"kind": "run", "id": run["id"], "label": run["label"], "cells": [_format(run["summary"][f]) for f in RUN_FIELDS]}
        for run in comparison["runs"]
    ]
    for experiment in comparison["experiments"]:
        cells = []
        for field in RUN_FIELDS:
            cell = experiment["summary"][field]
            text = _format(cell["mean"])
            if cell["half_width"] is not None:
                text += f" ± {cell['half_width']:.3g}"
            cells.append(f"{text} (n={cell['n']})" if cell["n"] else text)
        summary_rows.append({"kind": "experiment", "id": experiment["id"], "label": experiment["label"], "cells": cells})
    labels = [experiment["label"] for experiment in comparison["experiments"]]
    diff_rows = [
        {"key": key, "cells": [_format(values.get(label)) for label in labels]}
        for key, values in comparison["config_diff"].items()
    ]
    return {"summary_rows": summary_rows, "diff_labels": labels, "diff_rows": diff_rows}


def _csv(rows: list[list[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([[_cell(v) for v in row] for row in rows])
    return out.getvalue()


def _cell(value: Any) -> Any:
    """User text that a spreadsheet would run as a formula is quoted (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def comparison_curves_csv(comparison: dict[str, Any]) -> str:
    """The charted curves in long form: one row per point of each curve."""
    rows: list[list[Any]] = [["series", "id", "label", "curve", "timestep", comparison["metric"]]]
    for run in comparison["runs"]:
        for curve in ("raw", "min", "max", "smoothed"):
            if run[curve] is not None:
                rows += [["run", run["id"], run["label"], curve, x, v] for x, v in zip(run["x"], run[curve])]
    for experiment in comparison["experiments"]:
        for curve in ("mean", "lower", "upper"):
            rows += [
                ["experiment", experiment["id"], experiment["label"], curve, x, v]
                for x, v in zip(experiment["x"], experiment[curve])
            ]
    return _csv(rows)


def comparison_summary_csv(comparison: dict[str, Any]) -> str:
    """The summary table: a row per run, then a row per experiment (mean and 95% half-width
    across its seeds, in ``<field>_ci95`` columns)."""
    header = ["series", "id", "label", *RUN_FIELDS, *(f"{f}_ci95" for f in RUN_FIELDS), "n"]
    rows: list[list[Any]] = [header]
    for run in comparison["runs"]:
        rows.append(["run", run["id"], run["label"], *(run["summary"][f] for f in RUN_FIELDS), *([""] * len(RUN_FIELDS)), 1])
    for experiment in comparison["experiments"]:
        cells = experiment["summary"]
        rows.append(
            [
                "experiment", experiment["id"], experiment["label"],
                *(cells[f]["mean"] for f in RUN_FIELDS), *(cells[f]["half_width"] for f in RUN_FIELDS),
                len(experiment["runs"]),
            ]
        )
    return _csv(rows)
