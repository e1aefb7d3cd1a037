"""Rollups and the downsampled curves read from them, against numbers computed here from the
same events (run on SQLite, and on PostgreSQL when DATABASE_URL points there)."""

import random

import numpy as np
import pytest

from experiments_app import rollups, selectors, services
from experiments_app.models import MetricRollup, Run
from tests.web.helpers import event, hint_data, metrics_data, progress_data
from workers.events import EventKind


def engine_like_events(count: int, seed: int = 0):
    """``count`` rollouts as the engine reports them: METRICS then PROGRESS, with a hint now
    and then; mean_return missing in the first rollouts, as before any episode ends."""
    rng = random.Random(seed)
    events, seq = [], 0
    for i in range(count):
        if rng.random() < 0.3:
            seq += 1
            events.append(event(seq, EventKind.HINT, 1024 * i, **hint_data()))
        seq += 1
        value = None if i < 3 else rng.uniform(-1, 1)
        events.append(event(seq, EventKind.METRICS, 1024 * (i + 1), **metrics_data(value, teacher_accuracy=None)))
        seq += 1
        events.append(event(seq, EventKind.PROGRESS, 1024 * (i + 1), **progress_data(1024 * (i + 1))))
    return events


def record_in_batches(run, events, rng):
    start = 0
    while start < len(events):
        size = rng.randint(1, 60)
        services.run_record_events(run_id=run.pk, events=events[start : start + size])
        start += size


def expected_chunks(events, series: str, level: int) -> dict[int, tuple]:
    """{chunk: (n, timestep sum, value sum, min, max)} of a series computed from the events."""
    kind, column = rollups.SERIES[series]
    out: dict[int, list] = {}
    for e in events:
        value = e.data.get(column) if e.kind.value == kind else None
        if value is None:
            continue
        n, t, s, lo, hi = out.get(e.seq >> level, (0, 0.0, 0.0, np.inf, -np.inf))
        out[e.seq >> level] = (n + 1, t + e.timestep, s + value, min(lo, value), max(hi, value))
    return {c: tuple(v) for c, v in out.items()}


def stored_chunks(run, metric: str, level: int) -> dict[int, tuple]:
    rows = MetricRollup.objects.filter(run=run, metric=metric, level=level)
    return {r.chunk: (r.n, r.timestep_sum, r.value_sum, r.value_min, r.value_max) for r in rows}


@pytest.fixture
def long_run(run):
    events = engine_like_events(250)
    record_in_batches(run, events, random.Random(1))
    run.refresh_from_db()
    return run, events


def test_every_level_matches_the_events_whatever_the_batches(long_run):
    run, events = long_run
    top = run.last_seq.bit_length()
    for level in range(rollups.LEVEL_MIN, top + 1):
        for metric in ("mean_return", "guidance_coef", "fps"):
            expected, stored = expected_chunks(events, metric, level), stored_chunks(run, metric, level)
            assert stored.keys() == expected.keys(), (metric, level)
            for chunk, values in expected.items():
                assert stored[chunk] == pytest.approx(values), (metric, level, chunk)
    assert not MetricRollup.objects.filter(run=run, metric="teacher_accuracy").exists(), "never a value: no rollup"
    before = sorted(MetricRollup.objects.filter(run=run).values_list("metric", "level", "chunk", "n", "value_sum"))
    rollups.metric_rollups_refresh(run_id=run.pk, first_seq=1, last_seq=run.last_seq)
    services.run_record_events(run_id=run.pk, events=events[100:180])
    after = sorted(MetricRollup.objects.filter(run=run).values_list("metric", "level", "chunk", "n", "value_sum"))
    assert after == before, "a refresh or a batch stored twice changes nothing"


def test_curves_are_chunk_means_with_their_extremes_short_runs_whole(long_run, experiment):
    run, events = long_run
    short = experiment.runs.get(seed=1)
    short_events = engine_like_events(6, seed=2)
    services.run_record_events(run_id=short.pk, events=short_events)
    short.refresh_from_db()
    points = 40
    level = rollups.level_for(run.last_seq, points)
    assert level >= rollups.LEVEL_MIN and rollups.level_for(short.last_seq, points) == 0

    curves = selectors.metric_curves(runs=[run, short], metric="mean_return", points=points)
    curve = curves[run.pk]
    expected = expected_chunks(events, "mean_return", level)
    assert len(curve.x) == len(expected) <= points
    for i, chunk in enumerate(sorted(expected)):
        n, t, s, lo, hi = expected[chunk]
        assert (curve.n[i], curve.x[i], curve.y[i], curve.low[i], curve.high[i]) == pytest.approx((n, t / n, s / n, lo, hi))
    whole = [(e.timestep, e.data["mean_return"]) for e in short_events if e.kind == EventKind.METRICS and e.data["mean_return"] is not None]
    assert curves[short.pk].x.tolist() == [t for t, _ in whole] and curves[short.pk].y == pytest.approx([v for _, v in whole])
    assert (curves[short.pk].n == 1).all()


def test_short_runs_are_grouped_from_the_rows_below_the_first_stored_level(long_run):
    run, events = long_run
    level = rollups.level_for(run.last_seq, run.last_seq >> 2)
    assert 0 < level < rollups.LEVEL_MIN
    curve = selectors.metric_curves(runs=[run], metric="guidance_coef", points=run.last_seq >> 2)[run.pk]
    expected = expected_chunks(events, "guidance_coef", level)
    assert curve.y == pytest.approx([s / n for n, _, s, _, _ in (expected[c] for c in sorted(expected))])
    assert curve.high == pytest.approx([hi for *_, hi in (expected[c] for c in sorted(expected))])


def test_discarded_events_take_their_rollups_along(long_run):
    run, _ = long_run
    services.run_discard_events(run=run)
    assert not MetricRollup.objects.filter(run=run).exists()
    assert selectors.run_state(run=Run.objects.get(pk=run.pk))["rewound_attempt"] == run.attempt, "pages load again"
    assert selectors.metric_curves(runs=[run], metric="mean_return", points=40) == {}


def test_level_for_bounds_the_chunks():
    assert rollups.level_for(0, 500) == 0 and rollups.level_for(499, 500) == 0
    assert rollups.level_for(500, 500) == 1
    for last_seq in (1000, 123_457, 10**7):
        level = rollups.level_for(last_seq, 500)
        assert (last_seq >> level) < 500 <= (last_seq >> (level - 1))


def test_past_the_grouping_budget_short_runs_are_read_from_the_first_stored_level(long_run, monkeypatch):
    run, events = long_run
    points = run.last_seq >> 2
    monkeypatch.setattr(selectors, "GROUPED_ROWS", run.last_seq - 1)
    curve = selectors.metric_curves(runs=[run], metric="guidance_coef", points=points)[run.pk]
    expected = expected_chunks(events, "guidance_coef", rollups.LEVEL_MIN)
    assert curve.y == pytest.approx([s / n for n, _, s, _, _ in (expected[c] for c in sorted(expected))])
