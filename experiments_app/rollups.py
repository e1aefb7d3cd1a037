"""Summaries of a run's charted series at every resolution, so that charting a run costs a few
hundred rows however long it is: the compare page's curves, and the run page's history of a
long run.

Level ``s`` cuts the run's event numbers into chunks of 2**s consecutive seqs (chunk
``seq >> s``) and keeps, per series (one column of one kind of Metric row, ``SERIES``), the
count, timestep sum, value sum, minimum and maximum of the rows in each chunk
(``MetricRollup``). A chart of a run whose last seq
is N reads level ``level_for(N)``: at most ``points`` chunks, each drawn as its mean with its
minimum and maximum, so peaks and dips survive. Below ``LEVEL_MIN`` the same chunks are
grouped from the rows themselves at read time (at most ``points << LEVEL_MIN`` seqs a run):
storing those levels would cost more rows than it saves.

Grouping by seq, not by timestep, bounds the rows read whatever the rollout size, and keeps a
run's chunks fixed as it grows: a batch of events changes only the chunks that hold its seqs,
one small statement per level.
"""

from __future__ import annotations

from django.db import connection

from experiments_app.models import Metric, MetricRollup

SERIES: dict[str, tuple[str, str]] = {
    "mean_return": ("metrics", "mean_return"),
    "success_rate": ("metrics", "success_rate"),
    "teacher_accuracy": ("metrics", "teacher_accuracy"),
    "guidance_coef": ("metrics", "guidance_coef"),
    "fps": ("progress", "fps"),
    "eval_return": ("evaluation", "mean_return"),
    "eval_success": ("evaluation", "success_rate"),
    "eval_sampled_return": ("evaluation", "sampled_mean_return"),
    "eval_sampled_success": ("evaluation", "sampled_success_rate"),
}
"""{series name (``MetricRollup.metric``): (Metric kind, Metric column)}: every series rolled up."""

COMPARABLE = ("mean_return", "success_rate", "teacher_accuracy", "guidance_coef")
"""The series the compare page can chart against timestep."""

LEVEL_MIN = 4
"""The finest stored level: chunks of 16 seqs."""


def level_for(last_seq: int, points: int) -> int:
    """The finest level at which seqs 1..last_seq fall in at most ``points`` chunks."""
    level = 0
    while last_seq >> level >= points:
        level += 1
    return level


_COLUMNS = "run_id, metric, level, chunk, n, timestep_sum, value_sum, value_min, value_max"
_UPSERT = (
    " ON CONFLICT (run_id, metric, level, chunk) DO UPDATE SET n = excluded.n, timestep_sum = excluded.timestep_sum,"
    " value_sum = excluded.value_sum, value_min = excluded.value_min, value_max = excluded.value_max"
)


def metric_rollups_refresh(*, run_id: int, first_seq: int, last_seq: int) -> None:
    """Recompute every level's chunks that hold a seq in [first_seq, last_seq], up to the
    level whose chunk 0 holds last_seq: level LEVEL_MIN from the run's Metric rows, each
    level above from the one below. Idempotent: a batch stored twice, or a whole run refreshed
    at once, leaves the same rollups. Call it in the transaction that stored the rows. Plain
    SQL (the same on SQLite and PostgreSQL): the sums never leave the database."""
    rollup, rows = MetricRollup._meta.db_table, Metric._meta.db_table
    # Series, kinds and columns are this module's constants, never user input.
    from_rows = " UNION ALL ".join(
        f"SELECT run_id, '{name}', {LEVEL_MIN}, seq >> {LEVEL_MIN}, COUNT(*), SUM(timestep), SUM({c}), MIN({c}), MAX({c})"
        f" FROM {rows} WHERE run_id = %s AND kind = '{kind}' AND seq >= %s AND seq < %s AND {c} IS NOT NULL"
        f" GROUP BY run_id, seq >> {LEVEL_MIN}"
        for name, (kind, c) in SERIES.items()
    )
    lo, hi = (first_seq >> LEVEL_MIN) << LEVEL_MIN, ((last_seq >> LEVEL_MIN) + 1) << LEVEL_MIN
    with connection.cursor() as cursor:
        # "WHERE true" keeps SQLite from reading ON CONFLICT as a join's ON.
        cursor.execute(
            f"INSERT INTO {rollup} ({_COLUMNS}) SELECT * FROM ({from_rows}) AS chunks WHERE true{_UPSERT}",
            [run_id, lo, hi] * len(SERIES),
        )
        for level in range(LEVEL_MIN + 1, max(LEVEL_MIN, last_seq.bit_length()) + 1):
            cursor.execute(
                f"INSERT INTO {rollup} ({_COLUMNS}) SELECT run_id, metric, {level}, chunk >> 1, SUM(n), SUM(timestep_sum),"
                f" SUM(value_sum), MIN(value_min), MAX(value_max) FROM {rollup}"
                f" WHERE run_id = %s AND level = {level - 1} AND chunk >= %s AND chunk <= %s"
                f" GROUP BY run_id, metric, chunk >> 1{_UPSERT}",
                [run_id, (first_seq >> level) << 1, ((last_seq >> level) << 1) | 1],
            )


def metric_rollups_forget(*, run_id: int, first_seq: int, last_seq: int) -> None:
    """After the run's rows with a seq in [first_seq, last_seq] were deleted: drop every
    level's chunks that held one and compute them again from the rows left. Call it in the
    deleting transaction."""
    if last_seq < first_seq:
        return
    for level in range(LEVEL_MIN, max(LEVEL_MIN, last_seq.bit_length()) + 1):  # the levels refresh writes
        MetricRollup.objects.filter(
            run_id=run_id, level=level, chunk__gte=first_seq >> level, chunk__lte=last_seq >> level
        ).delete()
    metric_rollups_refresh(run_id=run_id, first_seq=first_seq, last_seq=last_seq)
