"""Statistics of the compare page, on plain arrays: smoothing, aligning seeds on a common step
grid, t-intervals across seeds, area under a curve and config diffs.

No Django here: every function takes and returns numbers, so it is tested on hand-made data.
A curve is ``(x, y)``: x the timesteps, strictly increasing; y the values, same length.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import signal, stats

MAX_POINTS = 500
"""Most points a curve sent to the browser has (the database downsamples longer ones)."""

MAX_CHART_POINTS = 20_000
"""Most points the runs' curves of one chart have together: 100 overlaid curves of 200 points
each already outnumber the pixels of a chart 1000 px wide, and every point costs the server,
the payload and Plotly alike."""


def points_per_curve(curves: int) -> int:
    """How many points each of ``curves`` curves of one chart may have."""
    return max(1, min(MAX_POINTS, MAX_CHART_POINTS // max(1, curves)))


def ema(y: np.ndarray, smoothing: float) -> np.ndarray:
    """Exponential moving average, TensorBoard's slider: s[0] = y[0],
    s[i] = smoothing * s[i-1] + (1 - smoothing) * y[i]. ``smoothing`` in [0, 1); 0 returns y."""
    if not 0.0 <= smoothing < 1.0:
        raise ValueError("smoothing must be in [0, 1)")
    y = np.asarray(y, dtype=float)
    if smoothing == 0.0 or y.size == 0:
        return y.copy()
    # lfilter runs the recursion in C; zi makes the first output y[0] instead of (1-w)*y[0].
    out, _ = signal.lfilter([1.0 - smoothing], [1.0, -smoothing], y, zi=[smoothing * y[0]])
    return out


def common_grid(curves: Sequence[tuple[np.ndarray, np.ndarray]], points: int = MAX_POINTS) -> np.ndarray:
    """``points`` evenly spaced timesteps over the range the curves cover together (from the
    earliest first x to the latest last x); empty when no curve has a point."""
    spans = [(x[0], x[-1]) for x, _ in curves if len(x)]
    if not spans:
        return np.empty(0)
    lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
    if lo == hi:
        return np.array([float(lo)])
    return np.linspace(lo, hi, points)


def align(curves: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> np.ndarray:
    """The curves linearly interpolated onto ``grid``: a (curves, grid) array, NaN where the grid
    lies outside a curve's own range (a seed that stopped early is not extended flat)."""
    out = np.full((len(curves), len(grid)), np.nan)
    for row, (x, y) in enumerate(curves):
        if len(x) == 0:
            continue
        inside = (grid >= x[0]) & (grid <= x[-1])
        out[row, inside] = np.interp(grid[inside], x, y)
    return out


@dataclass(frozen=True)
class Band:
    """Mean and 95% t-interval across seeds at each grid point. ``lower``/``upper`` are NaN
    where fewer than two seeds have a value; ``n`` is how many do."""

    x: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n: np.ndarray


def t_interval(values: np.ndarray, confidence: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, half-width, n) along ``axis``, ignoring NaN: half-width is
    t_{(1+confidence)/2, n-1} * s / sqrt(n) with s the sample standard deviation (ddof 1);
    NaN where n < 2."""
    values = np.asarray(values, dtype=float)
    n = np.sum(~np.isnan(values), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.nansum(values, axis=axis)
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        deviations = np.where(np.isnan(values), 0.0, values - np.expand_dims(mean, axis))
        s = np.sqrt(np.sum(deviations**2, axis=axis) / (n - 1))
        t = stats.t.ppf((1 + confidence) / 2, n - 1)
        half = np.where(n >= 2, t * s / np.sqrt(n), np.nan)
    return mean, half, n


def band(curves: Sequence[tuple[np.ndarray, np.ndarray]], points: int = MAX_POINTS, confidence: float = 0.95) -> Band:
    """The seeds' curves aligned on a common grid of ``points`` steps, then their mean and
    t-interval at each step."""
    grid = common_grid(curves, points)
    mean, half, n = t_interval(align(curves, grid), confidence, axis=0)
    return Band(x=grid, mean=mean, lower=mean - half, upper=mean + half, n=n)


def area_under_curve(x: np.ndarray, y: np.ndarray) -> float | None:
    """Trapezoidal area under y over x divided by the x range it spans: the curve's average
    height, so runs of different lengths compare (a return curve gives 0..1). The single
    value for one point; None for none."""
    if len(x) == 0:
        return None
    if len(x) == 1 or x[-1] == x[0]:
        return float(y[0])
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def mean_interval(values: Sequence[float | None], confidence: float = 0.95) -> dict[str, float | int | None]:
    """Mean, 95% t half-width and n of the non-missing values: the per-experiment summary
    across seeds. half_width is None for fewer than two values."""
    present = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if present.size == 0:
        return {"mean": None, "half_width": None, "n": 0}
    mean, half, n = t_interval(present, confidence)
    return {"mean": float(mean), "half_width": None if math.isnan(half) else float(half), "n": int(n)}


def config_diff(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Only the keys whose value is not the same in every config: {key: {label: value}}, keys
    sorted. A key missing from a config counts as the value None."""
    keys = sorted({k for config in configs.values() for k in config})
    diff: dict[str, dict[str, Any]] = {}
    for key in keys:
        values = {label: config.get(key) for label, config in configs.items()}
        if len({repr(v) for v in values.values()}) > 1:
            diff[key] = values
    return diff


def finite_or_none(values: np.ndarray, digits: int = 4) -> list[float | None]:
    """A JSON-able list: rounded to ``digits`` significant digits (payload size), NaN -> None.
    Vectorised (the compare page rounds some 10^5 values): each value becomes an integer
    times a power of ten, an exactly rounded division or product, so it prints as short as
    ``f"{v:.4g}"`` would."""
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        places = digits - 1 - np.floor(np.log10(np.abs(np.where(finite & (v != 0), v, 1.0)))).astype(int)
    up = places >= 0
    rounded = np.where(
        up, np.rint(v * 10.0 ** np.where(up, places, 0)) / 10.0 ** np.where(up, places, 0),
        np.rint(v / 10.0 ** np.where(up, 0, -places)) * 10.0 ** np.where(up, 0, -places),
    )
    out: list[float | None] = rounded.tolist()
    for i in np.flatnonzero(~finite):
        out[i] = None
    return out
