"""study.stats on inputs whose answers are known by hand or by brute force."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sp

from study import stats


def test_iqm_trims_a_quarter_from_each_end():
    assert stats.iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert stats.iqm([0, 0, 1, 1, 100]) == pytest.approx(2 / 3)  # floor(5/4) = 1 trimmed each end
    assert stats.iqm([1, 2, 3]) == pytest.approx(2.0)  # fewer than 4 runs: the mean


def test_bootstrap_of_identical_runs_is_a_point():
    point, low, high = stats.bootstrap_ci([np.full(5, 0.7)])
    assert point == low == high == pytest.approx(0.7)


def test_stratified_bootstrap_keeps_each_stratum_size():
    # Stratum A is all 0, B all 1: every stratified resample has 3 zeros and 5 ones, whose IQM
    # (trim 2 from each end of 0,0,0,1,1,1,1,1) is always 0.75; pooled as one stratum it varies.
    strata = [np.zeros(3), np.ones(5)]
    point, low, high = stats.bootstrap_ci(strata)
    assert point == low == high == pytest.approx(0.75)
    _, low1, high1 = stats.bootstrap_ci([np.concatenate(strata)])
    assert low1 < 0.75 < high1 or high1 - low1 > 0.2


def test_bootstrap_is_seeded_and_covers_the_mean_of_normal_samples():
    values = np.random.default_rng(1).normal(0.0, 1.0, 60)
    a, b = stats.bootstrap_ci([values], seed=3), stats.bootstrap_ci([values], seed=3)
    assert np.allclose(a, b)
    point, low, high = a
    assert low < 0.0 < high and 0.3 < high - low < 1.0  # about 2 * 1.96 / sqrt(60) = 0.51 wide


def test_bootstrap_of_curves_is_the_scalar_bootstrap_per_grid_point():
    curves = np.random.default_rng(2).uniform(size=(5, 4))  # 5 runs, 4 grid points
    point, low, high = stats.bootstrap_ci([curves], seed=7)
    for j in range(4):
        p, lo, hi = stats.bootstrap_ci([curves[:, j]], seed=7)
        assert (point[j], low[j], high[j]) == pytest.approx((float(p), float(lo), float(hi)))


def test_estimate_leaves_out_missing_values_and_accepts_strata():
    est = stats.estimate([0.5, None, 0.5, float("nan")])
    assert (est.value, est.low, est.high, est.n) == (0.5, 0.5, 0.5, 2)
    assert stats.estimate([None, None]).to_dict() == {"value": None, "low": None, "high": None, "n": 0}
    assert stats.estimate([[0.0, 0.0, 0.0], [1.0] * 5]).value == pytest.approx(0.75)


def test_a12_counts_ties_as_half():
    assert stats.a12([2, 3], [1, 2]) == pytest.approx(3.5 / 4)
    assert stats.a12([1, 1], [1, 1]) == pytest.approx(0.5)


def test_separated_samples_give_the_smallest_possible_p_value():
    result = stats.rank_test([10, 11, 12, 13, 14], [1, 2, 3, 4, 5])
    assert result.exact and result.a12 == 1.0
    assert result.p_value == pytest.approx(2 / 252) == pytest.approx(result.min_p)
    # Without ties the exact permutation test is the exact Mann-Whitney test.
    x, y = [0.3, 0.9, 0.5, 0.8, 0.7], [0.1, 0.6, 0.2, 0.4, 0.35]
    assert stats.rank_test(x, y).p_value == pytest.approx(sp.mannwhitneyu(x, y, method="exact").pvalue)


def test_ties_from_censoring_match_brute_force_enumeration():
    # Frames to threshold: three runs never reached it and carry the budget, 100.
    x, y = [40, 55, 100, 100, 60], [70, 100, 100, 90, 80]
    pooled = np.array(x + y, dtype=float)
    observed = stats.a12(x, y)
    splits = [stats.a12(pooled[list(c)], np.delete(pooled, list(c))) for c in itertools.combinations(range(10), 5)]
    greater = np.mean([s >= observed - 1e-12 for s in splits])
    less = np.mean([s <= observed + 1e-12 for s in splits])
    assert stats.rank_test(x, y).p_value == pytest.approx(min(1.0, 2 * min(greater, less)))


def test_a_test_needs_two_runs_a_side():
    with pytest.raises(ValueError, match="at least two"):
        stats.rank_test([1.0], [2.0, 3.0])


def test_holm_adjusts_in_order_and_stays_monotone():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_power_reflects_the_number_of_seeds():
    assert stats.min_p_value(5, 5) == pytest.approx(2 / math.comb(10, 5))
    assert stats.min_p_value(2, 2) == pytest.approx(1 / 3)
    assert stats.rank_test_power(2, 2, 10.0, sims=20) == 0.0  # p can never fall below 1/3
    assert stats.rank_test_power(5, 5, 6.0, sims=20) == 1.0
    assert stats.rank_test_power(5, 5, 0.0, sims=100) <= 0.1


def test_a_ratio_of_groups_resamples_each_group_on_its_own():
    ppo, mode = [30_000, 32_000, 34_000, 36_000, 40_000], [10_000, 12_000, 15_000, 16_000, 20_000]
    est = stats.group_estimate([ppo, mode], np.divide, reps=4000, seed=1)
    assert est.value == pytest.approx(stats.iqm(ppo) / stats.iqm(mode)) and est.n == 10
    assert est.low < est.value < est.high
    # The extremes a resample can reach: the smallest PPO IQM over the largest of the mode's, and the reverse.
    assert est.low >= 30_000 / 20_000 and est.high <= 40_000 / 10_000
    same = stats.group_estimate([[4.0] * 3, [2.0] * 3], np.divide)
    assert (same.value, same.low, same.high) == (2.0, 2.0, 2.0)


def test_a_ratio_with_no_runs_or_a_zero_denominator_has_no_value():
    assert stats.group_estimate([[], [1.0, 2.0]], np.divide).value is None
    share = lambda p, m, o: (p - m) / (p - o)  # noqa: E731
    assert stats.group_estimate([[3.0] * 3, [2.0] * 3, [3.0] * 3], share).to_dict() == {
        "value": None, "low": None, "high": None, "n": 9}
    # PPO's [3, 3, 4] has an IQM of 10/3; a resample of three 3s ties with the oracle: the share is
    # unbounded there, so there is a point but no interval.
    partly = stats.group_estimate([[3.0, 3.0, 4.0], [2.0] * 3, [3.0] * 3], share, reps=1000)
    assert partly.value == pytest.approx(4.0) and partly.low is None and partly.high is None
