"""The compare page's statistics on hand-made numbers (no database)."""

import math

import numpy as np
import pytest

from experiments_app import analysis


def test_ema_follows_the_recursion_and_zero_is_identity():
    y = np.array([0.0, 1.0, 1.0, 0.0])
    assert analysis.ema(y, 0.0).tolist() == y.tolist()
    # s0 = 0; s1 = .5*0 + .5*1 = .5; s2 = .25 + .5 = .75; s3 = .375
    assert analysis.ema(y, 0.5).tolist() == pytest.approx([0.0, 0.5, 0.75, 0.375])
    assert analysis.ema(np.array([3.0]), 0.9).tolist() == [3.0]
    with pytest.raises(ValueError):
        analysis.ema(y, 1.0)


def test_align_interpolates_and_leaves_nan_outside_a_curve():
    grid = np.array([0.0, 5.0, 10.0, 15.0])
    a = (np.array([0.0, 10.0]), np.array([0.0, 1.0]))
    b = (np.array([0.0, 20.0]), np.array([1.0, 3.0]))
    aligned = analysis.align([a, b], grid)
    assert aligned[0, :3].tolist() == [0.0, 0.5, 1.0] and math.isnan(aligned[0, 3])
    assert aligned[1].tolist() == [1.0, 1.5, 2.0, 2.5]


def test_band_is_the_t_interval_across_seeds():
    # Three seeds that are constant 1, 2 and 3: mean 2, s = 1, half = t(.975, 2) / sqrt(3).
    curves = [(np.array([0.0, 100.0]), np.full(2, v)) for v in (1.0, 2.0, 3.0)]
    result = analysis.band(curves, points=5)
    half = 4.302652729911275 / math.sqrt(3)
    assert result.x.tolist() == [0.0, 25.0, 50.0, 75.0, 100.0]
    assert result.mean.tolist() == pytest.approx([2.0] * 5)
    assert result.upper.tolist() == pytest.approx([2.0 + half] * 5)
    assert result.lower.tolist() == pytest.approx([2.0 - half] * 5)
    assert result.n.tolist() == [3] * 5


def test_band_with_one_seed_has_a_mean_and_no_interval():
    result = analysis.band([(np.array([0.0, 10.0]), np.array([0.0, 1.0]))], points=3)
    assert result.mean.tolist() == [0.0, 0.5, 1.0]
    assert all(math.isnan(v) for v in result.upper)


def test_area_under_curve_is_the_average_height():
    assert analysis.area_under_curve(np.array([0.0, 10.0]), np.array([0.0, 1.0])) == pytest.approx(0.5)
    assert analysis.area_under_curve(np.array([0.0, 1.0, 3.0]), np.array([1.0, 1.0, 0.0])) == pytest.approx(2.0 / 3.0)
    assert analysis.area_under_curve(np.array([5.0]), np.array([0.7])) == 0.7
    assert analysis.area_under_curve(np.array([]), np.array([])) is None


def test_mean_interval_across_seeds():
    summary = analysis.mean_interval([1.0, None, 3.0])
    assert summary["mean"] == 2.0 and summary["n"] == 2
    assert summary["half_width"] == pytest.approx(12.706204736174707)
    assert analysis.mean_interval([None]) == {"mean": None, "half_width": None, "n": 0}
    assert analysis.mean_interval([4.0]) == {"mean": 4.0, "half_width": None, "n": 1}


def test_config_diff_keeps_only_differing_keys():
    diff = analysis.config_diff({"a": {"lr": 0.1, "gamma": 0.99}, "b": {"lr": 0.2, "gamma": 0.99, "extra": 1}})
    assert diff == {"extra": {"a": None, "b": 1}, "lr": {"a": 0.1, "b": 0.2}}


def test_finite_or_none_rounds_and_maps_nan():
    assert analysis.finite_or_none(np.array([1.23456789, np.nan, np.inf])) == [1.235, None, None]


def test_points_per_curve_shares_the_chart_budget():
    assert analysis.points_per_curve(1) == analysis.points_per_curve(40) == analysis.MAX_POINTS
    assert analysis.points_per_curve(100) == analysis.MAX_CHART_POINTS // 100
