"""The study's figures, as Plotly HTML (plotly.js from its CDN, so the files stay small) and
PNG (kaleido, which drives a Chrome/Chromium; where it finds none, HTML only):

* ``returns``: per level, the training-return curve of every mode, the IQM across seeds with
  its stratified bootstrap 95 % band (the tables' statistics), on a grid of one point per
  rollout, with the level's threshold dashed;
* ``teacher_accuracy``: per level, the teacher's accuracy on the probe states over training
  (plan accuracy for subgoal guidance), unidirectional against bidirectional with the level's
  guidance kind, same statistics;
* ``speedup``: per level and mode, the speed-up against PPO alone in frames to threshold and
  the share of the oracle's gain, with their 95 % CIs (``study.aggregate``).

A mode with subgoal guidance is drawn in its mode's colour, dashed.

Seeds are aligned on the grid by linear interpolation (``experiments_app.analysis.align``, as
on the compare page); a grid point where some seed has no value yet (no finished episode) is
left out rather than estimated from fewer seeds.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from experiments_app.analysis import align
from study import stats
from study.chrome import chrome_path
from study.data import RunData, StudyData
from study.spec import SUBGOALS, base_mode

COLORS = {
    "ppo": "#7f7f7f",
    "teacher": "#bcbd22",
    "unidirectional": "#1f77b4",
    "bidirectional": "#d62728",
    "oracle": "#2ca02c",
}
ACCURACY_MODES = ("unidirectional", "bidirectional")
BOUND_MARK = {"exact": "", "lower": "≥ ", "upper": "≤ ", "unknown": "? "}
"""How a statistic bounded by censored runs is labelled (``aggregate._bound``)."""


def level_grid(data: StudyData, env_id: str) -> np.ndarray:
    """One point per rollout, from frame 0 (the teacher's zero-shot accuracy) to the budget."""
    level = data.spec.level(env_id)
    rollout = data.spec.config(level, data.spec.modes_of(level)[0], 0).rollout_frames
    return np.arange(0, level.total_timesteps + 1, rollout, dtype=float)


def band(curves: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray, *, reps: int = 2000, seed: int = 0):
    """(x, IQM, low, high) across the curves on ``grid``, where every curve has a value."""
    aligned = align(curves, grid)
    keep = ~np.isnan(aligned).any(axis=0)
    if not curves or not keep.any():
        empty = np.empty(0)
        return empty, empty, empty, empty
    point, low, high = stats.bootstrap_ci([aligned[:, keep]], stats.iqm, reps=reps, seed=seed)
    return grid[keep], point, low, high


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _add_band(fig: go.Figure, col: int, name: str, runs: list[RunData], curve: str, grid: np.ndarray, legend: bool) -> None:
    x, mid, low, high = band([getattr(r, curve) for r in runs if len(getattr(r, curve)[0])], grid)
    if not len(x):
        return
    color = COLORS.get(base_mode(name), "#000000")
    fig.add_trace(
        go.Scatter(
            x=np.concatenate([x, x[::-1]]), y=np.concatenate([high, low[::-1]]), fill="toself",
            mode="lines", fillcolor=_rgba(color, 0.18), line={"width": 0}, hoverinfo="skip", showlegend=False,
            legendgroup=name,
        ),
        row=1, col=col,
    )
    fig.add_trace(
        go.Scatter(
            x=x, y=mid, mode="lines", name=name,
            line={"color": color, "width": 2, "dash": "dash" if name.endswith(SUBGOALS) else "solid"},
            legendgroup=name, showlegend=legend,
        ),
        row=1, col=col,
    )


def _figure(titles: list[str], title: str, y_title: str) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.05)
    fig.update_layout(
        title=title, template="plotly_white", width=520 * len(titles), height=460,
        legend={"orientation": "h", "y": -0.18}, margin={"t": 80, "b": 90, "l": 60, "r": 20},
    )
    fig.update_xaxes(title_text="frames")
    fig.update_yaxes(title_text=y_title, col=1)
    return fig


@dataclass
class Panel:
    """One level's subplot: each mode's runs, drawn on ``grid``, with the level's threshold."""

    env_id: str
    threshold: float
    grid: np.ndarray
    runs: dict[str, list[RunData]]


def study_panels(data: StudyData) -> list[Panel]:
    """A panel per level of the study, its modes in report order."""
    return [
        Panel(level.env_id, level.return_threshold, level_grid(data, level.env_id),
              {mode: data.select(level.env_id, mode) for mode in data.spec.modes_of(level)})
        for level in data.spec.levels
    ]


def returns_figure(panels: list[Panel]) -> go.Figure:
    fig = _figure([p.env_id for p in panels], "Training return: IQM across seeds, 95 % bootstrap band", "return (last 100 episodes)")
    shown: set[str] = set()  # each mode once in the legend, where it first appears
    for col, panel in enumerate(panels, start=1):
        for mode, runs in panel.runs.items():
            _add_band(fig, col, mode, runs, "returns", panel.grid, legend=mode not in shown)
            shown.add(mode)
        fig.add_hline(y=panel.threshold, line={"dash": "dash", "color": "#444", "width": 1}, row=1, col=col)
    fig.update_yaxes(range=[0, 1])
    return fig


def accuracy_figure(data: StudyData) -> go.Figure:
    fig = _figure(
        [level.env_id for level in data.spec.levels], "Teacher accuracy against the BabyAI bot (plan accuracy with subgoal guidance): IQM across seeds, "
        "95 % bootstrap band", "teacher accuracy",
    )
    shown: set[str] = set()
    for col, level in enumerate(data.spec.levels, start=1):
        grid = level_grid(data, level.env_id)
        for mode in (level.arm(m) for m in ACCURACY_MODES):
            if mode in data.spec.modes_of(level):
                _add_band(fig, col, mode, data.select(level.env_id, mode), "accuracy", grid, legend=mode not in shown)
                shown.add(mode)
    fig.update_yaxes(range=[0, 1])
    return fig


def speedup_figure(aggregates: dict) -> go.Figure:
    """Per level and mode, the speed-up against PPO alone (log axis) and the share of the
    oracle's gain, each point with its 95 % CI; a label starting with ≥ or ≤ is a bound."""
    fig = make_subplots(
        rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.03,
        subplot_titles=["speed-up against PPO alone (frames to threshold)", "share of the oracle's gain"],
    )
    for col, field in ((1, "speedups"), (2, "oracle_shares")):
        for level in aggregates["levels"]:
            for mode, est in level[field].items():
                if est["value"] is None:
                    continue
                low = est["low"] if est["low"] is not None else est["value"]
                high = est["high"] if est["high"] is not None else est["value"]
                fig.add_trace(
                    go.Scatter(
                        x=[est["value"]], y=[f"{level['env_id'].removeprefix('BabyAI-')} · {mode}"], mode="markers+text",
                        marker={"color": COLORS.get(base_mode(mode), "#000000"), "size": 10,
                                "symbol": "diamond" if mode.endswith(SUBGOALS) else "circle"},
                        error_x={"type": "data", "symmetric": False, "array": [high - est["value"]],
                                 "arrayminus": [est["value"] - low]},
                        text=[f"{BOUND_MARK[est['bound']]}{est['value']:.2f}"], textposition="top center",
                        showlegend=False, hovertemplate=f"{mode}: %{{x:.2f}} [{low:.2f}, {high:.2f}]<extra></extra>",
                    ),
                    row=1, col=col,
                )
    fig.add_vline(x=1, line={"dash": "dash", "color": "#444", "width": 1}, row=1, col=1)
    for x in (0, 1):
        fig.add_vline(x=x, line={"dash": "dash", "color": "#444", "width": 1}, row=1, col=2)
    fig.update_xaxes(type="log", row=1, col=1)
    fig.update_yaxes(autorange="reversed")  # top to bottom in the report's order
    rows = sum(len(level["speedups"]) for level in aggregates["levels"])
    fig.update_layout(
        title="Speed-up and share of the oracle's gain: IQM ratios across seeds, 95 % bootstrap CI",
        template="plotly_white", width=1200, height=180 + 34 * max(rows, 3), margin={"t": 110, "b": 50, "l": 300, "r": 20},
    )
    return fig


NO_CHROME = (
    "figures: PNGs skipped, no Chrome/Chromium found (kaleido needs one); the HTML figures are written. "
    "For the PNGs: install Chromium (apt-get install chromium), or with internet run `plotly_get_chrome -y` "
    "(kaleido's own download; from Python, kaleido.get_chrome_sync()), or point BROWSER_PATH at a Chrome/Chromium "
    "binary; then run the command again (for the study: `python -m study report <study dir>`)."
)


def save_figures(figures: dict[str, go.Figure], directory: Path) -> list[Path]:
    """Each figure as ``<name>.html`` in ``directory``, and as ``<name>.png`` where
    ``chrome_path`` finds a browser (else ``NO_CHROME`` on stderr, and PNGs of those names an
    earlier call left there are removed: they show other data); the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    htmls = [directory / f"{name}.html" for name in figures]
    for fig, html in zip(figures.values(), htmls):
        fig.write_html(html, include_plotlyjs="cdn")
    pngs = [directory / f"{name}.png" for name in figures]
    if chrome_path() is None:
        for png in pngs:
            png.unlink(missing_ok=True)
        print(NO_CHROME, file=sys.stderr)
        return htmls
    pio.write_images(  # one Chromium for all of them, at the size the layouts ask for
        list(figures.values()), pngs,
        width=[f.layout.width for f in figures.values()], height=[f.layout.height for f in figures.values()],
    )
    return htmls + pngs


def write_figures(data: StudyData, aggregates: dict, directory: Path) -> list[Path]:
    """The study's figures, saved by ``save_figures``. ``aggregates``:
    ``study.aggregate.aggregate(data)``."""
    return save_figures(
        {
            "returns": returns_figure(study_panels(data)),
            "teacher_accuracy": accuracy_figure(data),
            "speedup": speedup_figure(aggregates),
        },
        directory,
    )
