"""Reads. Everything a user can reach goes through a team-scoped queryset: a user sees the
experiments and runs of the teams they belong to, and nothing else."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection
from django.db.models import Avg, Case, Count, Exists, F, Max, Min, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from experiments_app import rollups
from experiments_app.models import Experiment, Hint, Membership, Metric, MetricRollup, Run, Team
from experiments_app.rollups import COMPARABLE
from workers.config import Mode

BACKFILL_HINTS = 20
"""Most hints a back-fill page carries: its latest (the page shows the last one)."""


def team_list(*, user: AbstractBaseUser) -> QuerySet[Team]:
    return Team.objects.filter(memberships__user=user).order_by("name")


def team_get(*, user: AbstractBaseUser, team_id: int) -> Team | None:
    """The team if the user is one of its members, else None (whether or not it exists)."""
    return team_list(user=user).filter(pk=team_id).first()


def team_overview(*, user: AbstractBaseUser) -> QuerySet[Team]:
    """The user's teams by name, each annotated with ``role`` (the user's), ``member_count``
    and ``experiment_count``."""
    return team_list(user=user).annotate(
        role=F("memberships__role"),
        member_count=_count_per_team(Membership),
        experiment_count=_count_per_team(Experiment),
    )


def _count_per_team(model: type[Membership] | type[Experiment]) -> Coalesce:
    """How many rows of ``model`` the outer query's team has, as a subquery (a join would
    multiply the rows of the other count)."""
    rows = model.objects.filter(team=OuterRef("pk")).order_by().values("team").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(rows), 0)


def team_members(*, team: Team) -> QuerySet[Membership]:
    """The team's memberships, admins first, then by username, with their users."""
    return (
        Membership.objects.filter(team=team)
        .select_related("user")
        .order_by(Case(When(role=Membership.Role.ADMIN, then=0), default=1), "user__username")
    )


def team_membership_get(*, team: Team, user_id: int) -> Membership | None:
    """The user's membership of the team, with the user, or None if they are not in it."""
    return team_members(team=team).filter(user_id=user_id).first()


def user_is_team_admin(*, user: AbstractBaseUser, team_id: int) -> bool:
    """Whether the user is an admin of the team: who may change its members, and stop or delete
    any of its runs."""
    return Membership.objects.filter(team_id=team_id, user=user, role=Membership.Role.ADMIN).exists()


def user_get(*, username: str) -> AbstractBaseUser | None:
    """The user of that username (exactly as they log in with it), or None."""
    return get_user_model().objects.filter(username=username).first()


def experiment_list(*, user: AbstractBaseUser) -> QuerySet[Experiment]:
    """The user's teams' experiments, newest first, with their runs prefetched."""
    return (
        Experiment.objects.filter(team__memberships__user=user)
        .select_related("team", "owner")
        .prefetch_related(Prefetch("runs", queryset=Run.objects.order_by("seed")))
    )


def experiment_get(*, user: AbstractBaseUser, experiment_id: int) -> Experiment | None:
    return experiment_list(user=user).filter(pk=experiment_id).first()


def run_list(*, user: AbstractBaseUser) -> QuerySet[Run]:
    """The user's teams' runs, with their experiment, its team and owner."""
    return Run.objects.filter(experiment__team__memberships__user=user).select_related(
        "experiment", "experiment__team", "experiment__owner"
    )


def run_get(*, user: AbstractBaseUser, run_id: int) -> Run | None:
    """The run if one of the user's teams owns it, else None (whether or not it exists)."""
    return run_list(user=user).filter(pk=run_id).first()


def user_can_manage(*, user: AbstractBaseUser, experiment: Experiment) -> bool:
    """Whether the user may stop, resume or delete the experiment's runs: its owner or an
    admin of its team."""
    return experiment.owner_id == user.pk or user_is_team_admin(user=user, team_id=experiment.team_id)


def user_active_run_count(*, user: AbstractBaseUser) -> int:
    """How many runs of the user's experiments are queued or running, in any team: what
    ``settings.MAX_ACTIVE_RUNS_PER_USER`` caps."""
    return Run.objects.filter(experiment__owner=user, status__in=Run.ACTIVE_STATUSES).count()


# --- lists: search, filters, sorting ---------------------------------------------------------


@dataclass(frozen=True)
class ListFilters:
    """What the runs and experiments lists (and the API) are narrowed and sorted by; empty
    strings filter nothing. ``q`` searches name, description and tags (substring, any case);
    ``tag`` is one exact tag; ``owner`` a username; ``sort`` one of SORTS."""

    q: str = ""
    status: str = ""
    level: str = ""
    mode: str = ""
    tag: str = ""
    owner: str = ""
    sort: str = "-created"


SORTS = ("-created", "created", "name", "-name", "-final_return", "final_return")


def _tagged(tag: str, *, exact: bool, experiment_path: str) -> Q:
    """Experiments (at ``experiment_path``: "" or "experiment__") with the tag, or with a tag
    containing ``tag`` when not ``exact``."""
    if connection.vendor != "sqlite":
        lookup = "tags__contains" if exact else "tags__icontains"
        return Q(**{experiment_path + lookup: [tag] if exact else tag})
    # SQLite has no JSON containment lookup, and stores non-ASCII as \u escapes, so the
    # array's elements are matched one by one with json_each.
    escaped = tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    condition, param = ("t.value = %s", tag) if exact else ("t.value LIKE %s ESCAPE '\\'", f"%{escaped}%")
    ids = RawSQL(f"SELECT e.id FROM {Experiment._meta.db_table} e, json_each(e.tags) t WHERE {condition}", [param])
    return Q(**{(experiment_path + "id__in") if experiment_path else "pk__in": ids})


def _experiment_filter(filters: ListFilters, experiment_path: str = "") -> Q:
    """The filters that concern the experiment (all but status), at ``experiment_path``."""
    where = Q()
    p = experiment_path
    if filters.q:
        where &= (
            Q(**{p + "name__icontains": filters.q})
            | Q(**{p + "description__icontains": filters.q})
            | _tagged(filters.q, exact=False, experiment_path=p)
        )
    if filters.level:
        where &= Q(**{p + "env_id": filters.level})
    if filters.mode:
        where &= Q(**{p + "mode": filters.mode})
    if filters.tag:
        where &= _tagged(filters.tag, exact=True, experiment_path=p)
    if filters.owner:
        where &= Q(**{p + "owner__username": filters.owner})
    return where


def _ordering(sort: str, *, name: str, final_return: str) -> list[Any]:
    """ORDER BY for one of SORTS; missing returns sort last either way; ties newest first."""
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    if key == "name":
        field: Any = F(name).desc() if descending else F(name).asc()
    elif key == "final_return":
        field = F(final_return).desc(nulls_last=True) if descending else F(final_return).asc(nulls_last=True)
    else:
        field = F("created").desc() if descending else F("created").asc()
    return [field, "-id"]


def experiment_search(*, user: AbstractBaseUser, filters: ListFilters) -> QuerySet[Experiment]:
    """The user's experiments that match ``filters`` (status: any of its runs has it), sorted;
    each annotated with ``final_return``, the mean final evaluation return of its runs."""
    experiments = experiment_list(user=user).filter(_experiment_filter(filters))
    if filters.status:
        experiments = experiments.filter(Exists(Run.objects.filter(experiment=OuterRef("pk"), status=filters.status)))
    experiments = experiments.annotate(final_return=Avg("runs__final_eval_return"))
    return experiments.order_by(*_ordering(filters.sort, name="name", final_return="final_return"))


def run_search(*, user: AbstractBaseUser, filters: ListFilters) -> QuerySet[Run]:
    """The user's runs that match ``filters``, sorted (by name: experiment name, then seed)."""
    runs = run_list(user=user).filter(_experiment_filter(filters, "experiment__"))
    if filters.status:
        runs = runs.filter(status=filters.status)
    ordering = _ordering(filters.sort, name="experiment__name", final_return="final_eval_return")
    if filters.sort.lstrip("-") == "name":
        ordering.insert(1, "seed")
    return runs.order_by(*ordering)


def list_choices(*, user: AbstractBaseUser) -> dict[str, list[str]]:
    """The levels and owners that occur in the user's teams' experiments (filter menus)."""
    experiments = Experiment.objects.filter(team__memberships__user=user)
    return {
        "levels": sorted(set(experiments.values_list("env_id", flat=True))),
        "owners": sorted(set(experiments.values_list("owner__username", flat=True))),
    }


# --- compare ---------------------------------------------------------------------------------


def compare_runs(*, user: AbstractBaseUser, run_ids: Iterable[int], experiment_ids: Iterable[int]) -> QuerySet[Run]:
    """The given runs and every run of the given experiments that the user may see, by
    experiment then seed; ids of other teams' runs are dropped, as if they did not exist. A
    query, not yet run: a caller with a limit counts it first."""
    return (
        run_list(user=user)
        .filter(Q(pk__in=list(run_ids)) | Q(experiment_id__in=list(experiment_ids)))
        .order_by("experiment_id", "seed")
    )


@dataclass(frozen=True)
class Curve:
    """A run's curve of one metric, downsampled: each point is a chunk of consecutive events
    (``rollups``), at the mean timestep of its rows, with the mean, least and greatest value
    and how many rows it holds (1 everywhere for a run short enough to be drawn whole)."""

    x: np.ndarray
    y: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray

    @classmethod
    def from_chunks(cls, chunks: np.ndarray) -> Curve:
        """From rows of (n, timestep sum, value sum, least, greatest), one per chunk."""
        n, t, total, low, high = np.asarray(chunks, dtype=float).reshape(-1, 5).T
        return cls(x=t / n, y=total / n, low=low, high=high, n=n)


GROUPED_ROWS = 20_000
"""Most rows ``metric_curves`` groups at read time for one chart (about 0.1 s on SQLite)."""


def metric_curves(*, runs: Sequence[Run], metric: str, points: int) -> dict[int, Curve]:
    """{run id: Curve} of the runs' METRICS events, at most ``points`` points a run, without
    the events where the metric is null; runs with no value are left out. One query for all
    the runs: stored rollups for long runs, the rows grouped in SQL for short ones (up to
    GROUPED_ROWS rows in all; every row for a run of fewer than ``points`` events). Callers
    scope ``runs`` to the user."""
    if metric not in COMPARABLE:
        raise ValueError(f"not a comparable metric: {metric}")
    levels = {run.pk: rollups.level_for(run.last_seq, points) for run in runs}
    grouped = [run for run in runs if 0 < levels[run.pk] < rollups.LEVEL_MIN]
    if sum(run.last_seq for run in grouped) > GROUPED_ROWS:
        # Grouping rows at read time costs a sort of them all (SQLite): past this many, these
        # runs are read from the first stored level instead, with fewer points.
        levels.update({run.pk: rollups.LEVEL_MIN for run in grouped})
    by_level: dict[int, list[int]] = {}
    for run_id, level in levels.items():
        by_level.setdefault(level, []).append(run_id)
    parts = []
    for level, ids in sorted(by_level.items()):
        if level >= rollups.LEVEL_MIN:
            part = MetricRollup.objects.filter(run_id__in=ids, metric=metric, level=level).values_list(
                "run_id", "chunk", "n", "timestep_sum", "value_sum", "value_min", "value_max"
            )
        else:
            part = (
                Metric.objects.filter(run_id__in=ids, kind=Metric.Kind.METRICS, **{f"{metric}__isnull": False})
                .annotate(chunk=F("seq").bitrightshift(level))
                .values("run_id", "chunk")
                .annotate(n=Count("id"), t=Sum("timestep"), s=Sum(metric), lo=Min(metric), hi=Max(metric))
                .values_list("run_id", "chunk", "n", "t", "s", "lo", "hi")
            )
        parts.append(part.order_by())
    if not parts:
        return {}
    rows = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    table = np.array(list(rows), dtype=float).reshape(-1, 7)
    table = table[np.lexsort((table[:, 1], table[:, 0]))]
    curves: dict[int, Curve] = {}
    if len(table):
        starts = np.flatnonzero(np.diff(table[:, 0], prepend=np.nan))
        for chunk in np.split(table, starts[1:]):
            curves[int(chunk[0, 0])] = Curve.from_chunks(chunk[:, 2:])
    return curves


def run_stop_requested(*, run_id: int) -> bool:
    return Run.objects.filter(pk=run_id, stop_requested=True).exists()


def run_state(*, run: Run) -> dict[str, Any]:
    """What the run page shows about the run itself (JSON-able)."""
    return {
        "id": run.pk,
        "status": run.status,
        "final": run.is_final,
        "timesteps": run.timesteps,
        "total_timesteps": run.total_timesteps,
        "fps": run.fps,
        "eta_s": run.eta_s,
        "last_seq": run.last_seq,
        "rewound_attempt": run.rewound_attempt,
        "stop_requested": run.stop_requested,
        # Queued, but its task never reached the broker (it was down): sent again once it answers.
        "no_task": run.status == Run.Status.QUEUED and not run.task_id and run.queued_at is not None,
        "error": run.error,
        "teacher_fault": run.teacher_fault,
        "summary": run.summary,
        "worker_host": run.worker_host,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def metric_as_event(metric: Metric) -> dict[str, Any]:
    return {"seq": metric.seq, "kind": metric.kind, "timestep": metric.timestep, "time": metric.time, "data": metric.data}


def hint_as_event(hint: Hint) -> dict[str, Any]:
    return {
        "seq": hint.seq,
        "kind": "hint",
        "timestep": hint.timestep,
        "time": hint.time,
        "data": {
            "situation": hint.situation,
            "situation_key": hint.situation_key,
            "distribution": hint.distribution,
            "teacher_action": hint.teacher_action,
            "action_taken": hint.action_taken,
            "feedback": hint.feedback,
            "weight": hint.weight,
            "source": hint.source,
            "plan": hint.plan,
        },
    }


def run_stored_events(*, run_id: int) -> list[dict[str, Any]]:
    """Every stored event of the run (metrics, evaluations, progress, hints), in seq order, as
    the engine emitted them: what is left of a run's events once the frames and the kinds that
    only set its fields (``services.events.RUN_UPDATES``) are set aside."""
    metrics = [metric_as_event(m) for m in Metric.objects.filter(run_id=run_id)]
    hints = [hint_as_event(h) for h in Hint.objects.filter(run_id=run_id)]
    return sorted(metrics + hints, key=lambda e: e["seq"])


def run_metrics_since(
    *, run_id: int, after_seq: int, kind: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """The run's stored metric, evaluation and progress events (only ``kind`` if given) with
    seq > after_seq, in seq order, the first ``limit`` of them if given."""
    metrics = Metric.objects.filter(run_id=run_id, seq__gt=after_seq)
    if kind:
        metrics = metrics.filter(kind=kind)
    metrics = metrics.order_by("seq")
    return [metric_as_event(m) for m in (metrics[:limit] if limit else metrics)]


@dataclass(frozen=True)
class EventPage:
    """Stored events of a run in seq order, and whether more were stored after them."""

    events: list[dict[str, Any]]
    more: bool


def run_events_since(
    *, run_id: int, after_seq: int, limit: int, hint_limit: int = BACKFILL_HINTS
) -> EventPage:
    """The run's stored events with seq > after_seq, in seq order, as the engine emitted them,
    one page at a time: the first ``limit`` metric, evaluation and progress events, and the
    latest ``hint_limit`` hints up to the last of them (all that come after them, on the last
    page). The next page starts after the page's last event."""
    page = list(Metric.objects.filter(run_id=run_id, seq__gt=after_seq).order_by("seq")[: limit + 1])
    more = len(page) > limit
    metrics = [metric_as_event(m) for m in page[:limit]]
    hints = Hint.objects.filter(run_id=run_id, seq__gt=after_seq)
    if more:  # hints after the page's last metric belong to the next page
        hints = hints.filter(seq__lte=metrics[-1]["seq"])
    latest_hints = [hint_as_event(h) for h in hints.order_by("-seq")[:hint_limit]]
    return EventPage(events=sorted(metrics + latest_hints, key=lambda e: e["seq"]), more=more)


HISTORY_POINTS = 500
"""Most points a series of a long run's history holds."""


@dataclass(frozen=True)
class RunHistory:
    """A run's rolled-up series (``rollups.SERIES``) over its events up to ``through_seq``."""

    through_seq: int
    series: dict[str, Curve]


def run_history(*, run: Run, recent: int, points: int = HISTORY_POINTS) -> RunHistory | None:
    """The run's charted series from its rollups, over its events up to ``recent`` (at most
    ``recent`` + 15) before its last: the events after ``through_seq`` are for the caller to
    read one by one. The coarsest level holding the run in at most ``points`` chunks covers
    what its whole chunks can, each finer level down to ``rollups.LEVEL_MIN`` the chunk or none
    after that: at most ``points`` plus one per level points a series. None when the run is
    too short to leave ``recent`` events out. One query."""
    top = max(rollups.LEVEL_MIN, rollups.level_for(run.last_seq, points))
    end_seq = max(0, run.last_seq - recent)
    covered, spans = 0, Q(pk__in=[])
    for level in range(top, rollups.LEVEL_MIN - 1, -1):
        first, last = covered >> level, end_seq >> level  # whole chunks after what is covered
        if last > first:
            spans |= Q(level=level, chunk__gte=first, chunk__lt=last)
            covered = last << level
    if not covered:
        return None
    rows = MetricRollup.objects.filter(spans, run=run).values_list(
        "metric", "level", "chunk", "n", "timestep_sum", "value_sum", "value_min", "value_max"
    )
    by_series: dict[str, list[tuple[Any, ...]]] = {}
    for name, level, chunk, *values in sorted(rows, key=lambda r: (r[0], r[2] << r[1])):
        by_series.setdefault(name, []).append(values)
    series = {name: Curve.from_chunks(values) for name, values in by_series.items()}
    return RunHistory(through_seq=covered - 1, series=series)


# --- launch estimates ------------------------------------------------------------------------


RECENT_RUNS = 10
"""Finished runs per mode that a run-time estimate is taken from."""


@dataclass(frozen=True)
class RunSpeed:
    """How fast a mode's runs went on this installation lately (the medians over ``runs``
    succeeded runs): training steps per second, and the seconds each run spent outside its
    training loop (loading and measuring the teacher, evaluating)."""

    mode: str
    steps_per_s: float
    setup_s: float
    runs: int

    def duration_s(self, total_timesteps: int) -> float:
        """The estimated wall time of one run of ``total_timesteps`` frames in this mode."""
        return self.setup_s + total_timesteps / self.steps_per_s


def run_speeds(*, user: AbstractBaseUser) -> dict[str, RunSpeed]:
    """{mode: RunSpeed} from the user's teams' last RECENT_RUNS succeeded runs of each mode
    whose summary reports their frames, training steps/s and wall time; a mode without such a
    run is left out."""
    speeds: dict[str, RunSpeed] = {}
    finished = run_list(user=user).filter(status=Run.Status.SUCCEEDED, summary__isnull=False)
    for mode in (m.value for m in Mode):
        summaries = finished.filter(experiment__mode=mode).order_by("-finished_at", "-id").values_list("summary", flat=True)
        measured = [
            (float(s["fps"]), max(0.0, float(s["wall_s"]) - float(s["timesteps"]) / float(s["fps"])))
            for s in summaries[:RECENT_RUNS]
            if all(isinstance(s.get(k), (int, float)) for k in ("fps", "wall_s", "timesteps")) and s["fps"] > 0
        ]
        if measured:
            fps, setup = np.median(np.array(measured), axis=0)
            speeds[mode] = RunSpeed(mode=mode, steps_per_s=float(fps), setup_s=float(setup), runs=len(measured))
    return speeds
