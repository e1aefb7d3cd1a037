"""The study's statistics on plain arrays (numpy and scipy only), as rliable computes them.

* **IQM**, the interquartile mean: the mean of the middle half of the runs,
  ``scipy.stats.trim_mean(x, 0.25)``, which trims floor(n/4) runs from each end (rliable's
  definition). It ignores a lucky and an unlucky seed without being as coarse as the median;
  with fewer than 4 runs nothing is trimmed and it is the mean.
* **Stratified percentile bootstrap 95 % CI**: resample the runs with replacement *within each
  stratum* (a level: each keeps its number of runs, as rliable's ``StratifiedBootstrap``),
  recompute the statistic on the pooled resample, ``reps`` times, and take the 2.5 and 97.5
  percentiles. Seeded, so a report is reproducible. With one stratum it is the ordinary
  percentile bootstrap. With 5 runs a resample can only combine those 5 values, so the interval
  is never wider than their range and is optimistic for tiny n (it says how the seeds we have
  spread, not more).
* **Ratios of groups** (a speed-up, a share of the oracle's gain): the same statistic of each
  group's IQM, each group resampled on its own (``group_estimate``).
* **Significance**: a two-sided permutation test of the Mann-Whitney statistic (exact: every
  split of the pooled runs when there are at most ``EXACT_LIMIT``, else ``reps`` random ones).
  A rank test because the metrics are bounded, skewed and, for frames to threshold, censored:
  every run that never reached the threshold carries the budget, a tie above every run that did,
  which ranks handle exactly and means do not. The permutation distribution keeps those ties
  (the textbook exact tables assume none). The effect size is Vargha and Delaney's A12 =
  P(X > Y) + P(X = Y) / 2 (0.5: no difference; 1: every X above every Y). ``holm`` adjusts the
  p-values of the comparisons made on one level and metric.
* **Power**: with n and m runs the smallest two-sided p-value any outcome can give is
  2 / C(n + m, n) (0.0079 for 5 vs 5, 0.33 for 2 vs 2); ``rank_test_power`` simulates how often
  the test reaches p < alpha for a given shift between two normal samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

EXACT_LIMIT = 20_000
"""Permutation tests enumerate every split up to this many, else sample ``reps`` of them."""


def iqm(values: np.ndarray, axis: int | None = 0) -> np.ndarray | float:
    """Interquartile mean along ``axis`` (rliable's: trim floor(n/4) from each end)."""
    return stats.trim_mean(np.asarray(values, dtype=float), 0.25, axis=axis)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap confidence interval, over ``n`` runs."""

    value: float | None
    low: float | None
    high: float | None
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def bootstrap_distribution(
    strata: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray] = iqm,
    *,
    reps: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """``statistic(resample, axis=0)`` for ``reps`` stratified resamples: shape (reps, ...).
    Each stratum is an array of runs along axis 0 (a run may be a scalar or a curve)."""
    rng = np.random.default_rng(seed)
    parts = []
    for stratum in strata:
        values = np.asarray(stratum, dtype=float)
        picks = rng.integers(0, len(values), size=(reps, len(values)))
        parts.append(values[picks])  # (reps, n_stratum, ...)
    pooled = np.concatenate(parts, axis=1)
    return np.asarray(statistic(np.moveaxis(pooled, 1, 0), axis=0))


def bootstrap_ci(
    strata: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray] = iqm,
    *,
    confidence: float = 0.95,
    reps: int = 2000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(statistic of the pooled runs, lower, upper): the stratified percentile bootstrap
    interval. Works elementwise for runs that are curves (arrays along axis 1)."""
    pooled = np.concatenate([np.asarray(s, dtype=float) for s in strata], axis=0)
    point = np.asarray(statistic(pooled, axis=0))
    draws = bootstrap_distribution(strata, statistic, reps=reps, seed=seed)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail], axis=0)
    return point, low, high


def estimate(
    values: Sequence[float | None] | Sequence[Sequence[float | None]],
    *,
    confidence: float = 0.95,
    reps: int = 2000,
    seed: int = 0,
) -> Estimate:
    """IQM and its bootstrap CI of runs given as one flat list (one stratum) or a list of
    strata; missing values (None, NaN) are left out. No runs: all None."""
    nested = bool(values) and all(isinstance(v, (list, tuple, np.ndarray)) for v in values)
    strata = [_present(s) for s in (values if nested else [values])]  # type: ignore[union-attr]
    strata = [s for s in strata if s.size]
    n = sum(s.size for s in strata)
    if not n:
        return Estimate(None, None, None, 0)
    point, low, high = bootstrap_ci(strata, iqm, confidence=confidence, reps=reps, seed=seed)
    return Estimate(float(point), float(low), float(high), n)


def group_estimate(
    groups: Sequence[Sequence[float]],
    combine: Callable[..., np.ndarray],
    *,
    confidence: float = 0.95,
    reps: int = 2000,
    seed: int = 0,
) -> Estimate:
    """``combine(iqm_0, iqm_1, ...)`` of the groups' IQMs (a speed-up: ``np.divide``), with a
    percentile bootstrap CI that resamples each group on its own: the groups are different runs
    (different modes), so nothing is paired. Where ``combine`` is undefined (a zero
    denominator) the point is None; where it is so in any resample, so is the interval: the
    statistic is unbounded within the resamples (a share of the oracle's gain where PPO alone
    and the oracle can tie), and leaving those resamples out would narrow it on that side. Any
    empty group: all None."""
    arrays = [_present(g) for g in groups]
    n = sum(a.size for a in arrays)
    if any(a.size == 0 for a in arrays):
        return Estimate(None, None, None, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        point = float(combine(*(np.float64(iqm(a, axis=None)) for a in arrays)))
        rng = np.random.default_rng(seed)
        draws = np.asarray(combine(*(iqm(a[rng.integers(0, a.size, size=(reps, a.size))], axis=1) for a in arrays)))
    if not math.isfinite(point):
        return Estimate(None, None, None, n)
    if not np.isfinite(draws).all():
        return Estimate(point, None, None, n)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Estimate(point, float(low), float(high), n)


def _present(values: Sequence[float | None]) -> np.ndarray:
    return np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)


def a12(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Vargha-Delaney A12 along ``axis``: P(X > Y) + 0.5 P(X = Y) over all pairs."""
    x, y = np.moveaxis(np.asarray(x, float), axis, -1), np.moveaxis(np.asarray(y, float), axis, -1)
    greater = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
    equal = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return greater + 0.5 * equal


@dataclass(frozen=True)
class RankTest:
    """A two-sided permutation test of the Mann-Whitney statistic between x and y."""

    p_value: float
    a12: float
    """P(x > y) + P(x = y) / 2."""
    n_x: int
    n_y: int
    exact: bool
    """Every split was enumerated (else ``reps`` random ones)."""
    min_p: float
    """The smallest two-sided p-value these sample sizes allow."""

    def to_dict(self) -> dict[str, float | int | bool]:
        return {
            "p_value": self.p_value, "a12": self.a12, "n_x": self.n_x, "n_y": self.n_y,
            "exact": self.exact, "min_p": self.min_p,
        }


def min_p_value(n_x: int, n_y: int) -> float:
    """Smallest two-sided p-value of an exact rank test with these sample sizes."""
    return min(1.0, 2 / math.comb(n_x + n_y, n_x))


def rank_test(x: Sequence[float], y: Sequence[float], *, reps: int = 10_000, seed: int = 0) -> RankTest:
    """Two-sided permutation test of A12 (equivalently of Mann-Whitney's U) between x and y,
    each of at least 2 values (with 1 against 1 no outcome could be significant)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 2 or y.size < 2:
        raise ValueError("each sample needs at least two values")
    splits = math.comb(x.size + y.size, x.size)
    exact = splits <= EXACT_LIMIT
    result = stats.permutation_test(
        (x, y),
        lambda a, b, axis: a12(a, b, axis=axis),
        permutation_type="independent",
        alternative="two-sided",
        vectorized=True,
        n_resamples=splits if exact else reps,
        rng=np.random.default_rng(seed),
    )
    return RankTest(
        p_value=float(min(1.0, result.pvalue)),
        a12=float(result.statistic),
        n_x=int(x.size),
        n_y=int(y.size),
        exact=exact,
        min_p=min_p_value(x.size, y.size),
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order): the i-th smallest is multiplied by
    (m - i), made monotone, capped at 1."""
    order = np.argsort(p_values)
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (m - rank) * p_values[index])
        adjusted[index] = min(1.0, running)
    return adjusted.tolist()


def rank_test_power(n_x: int, n_y: int, shift_sd: float, *, alpha: float = 0.05, sims: int = 400, seed: int = 0) -> float:
    """Share of simulated experiments (x ~ N(shift_sd, 1), y ~ N(0, 1)) in which ``rank_test``
    gives p < alpha: the power to detect a shift of ``shift_sd`` standard deviations."""
    rng = np.random.default_rng(seed)
    hits = 0
    for sim in range(sims):
        x = rng.normal(shift_sd, 1.0, n_x)
        y = rng.normal(0.0, 1.0, n_y)
        hits += rank_test(x, y, reps=1000, seed=seed + sim).p_value < alpha
    return hits / sims
