"""Read-only JSON API, session-authenticated and team-scoped like the pages.

GET /api/experiments/            ?q, status, level, mode, tag, owner, sort, page, page_size
GET /api/experiments/<id>/       the experiment and its runs
GET /api/runs/                   same parameters as the experiments list
GET /api/runs/<id>/
GET /api/runs/<id>/metrics/      ?after_seq=0&kind=metrics|evaluation|progress&limit=1000

Errors are JSON too: 401 not logged in, 404 not one of the user's (or no such page), 400 a
malformed query parameter, with ``{"error": ..., "fields": {name: [{"message", "code"}]}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.core.paginator import EmptyPage, Paginator
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from experiments_app import selectors
from experiments_app.forms import ListQueryForm
from experiments_app.models import Experiment, Metric, Run

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_METRICS = 5000


def _api_view(view: Callable[..., JsonResponse]) -> Callable[..., JsonResponse]:
    """GET only, and 401 as JSON instead of the pages' redirect to the login form."""

    @require_GET
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        if not request.user.is_authenticated:
            return JsonResponse({"error": "not logged in"}, status=401)
        return view(request, *args, **kwargs)

    return wrapper


def _bad_query(form: forms.Form) -> JsonResponse:
    return JsonResponse({"error": "invalid query parameters", "fields": form.errors.get_json_data()}, status=400)


def _not_found(what: str) -> JsonResponse:
    return JsonResponse({"error": f"no such {what}"}, status=404)


class ApiListForm(ListQueryForm):
    page_size = forms.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)


def experiment_as_dict(experiment: Experiment) -> dict[str, Any]:
    return {
        "id": experiment.pk,
        "name": experiment.name,
        "description": experiment.description,
        "team": experiment.team.name,
        "owner": experiment.owner.get_username(),
        "env_id": experiment.env_id,
        "mode": experiment.mode,
        "teacher_model": experiment.teacher_model,
        "hyperparameters": experiment.hyperparameters,
        "tags": experiment.tags,
        "notes": experiment.notes,
        "created": experiment.created.isoformat(),
        "runs": [run.pk for run in experiment.runs.all()],
    }


def run_as_dict(run: Run) -> dict[str, Any]:
    return {**selectors.run_state(run=run), "experiment": run.experiment_id, "seed": run.seed, "created": run.created.isoformat()}


def _paginated(request: HttpRequest, search: Callable[..., Any], as_dict: Callable[[Any], dict[str, Any]]) -> JsonResponse:
    form = ApiListForm(request.GET)
    if not form.is_valid():
        return _bad_query(form)
    items = search(user=request.user, filters=form.filters())
    paginator = Paginator(items, form.cleaned_data.get("page_size") or DEFAULT_PAGE_SIZE)
    number = form.cleaned_data.get("page") or 1
    try:
        page = paginator.page(number)
    except EmptyPage:
        return JsonResponse({"error": f"page {number} does not exist (there are {paginator.num_pages})"}, status=404)
    return JsonResponse(
        {
            "count": paginator.count,
            "page": page.number,
            "num_pages": paginator.num_pages,
            "next": page.next_page_number() if page.has_next() else None,
            "previous": page.previous_page_number() if page.has_previous() else None,
            "results": [as_dict(item) for item in page.object_list],
        }
    )


@_api_view
def experiment_list(request: HttpRequest) -> JsonResponse:
    return _paginated(request, selectors.experiment_search, experiment_as_dict)


@_api_view
def experiment_detail(request: HttpRequest, experiment_id: int) -> JsonResponse:
    experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
    if experiment is None:
        return _not_found("experiment")
    return JsonResponse({**experiment_as_dict(experiment), "runs": [run_as_dict(run) for run in experiment.runs.all()]})


@_api_view
def run_list(request: HttpRequest) -> JsonResponse:
    return _paginated(request, selectors.run_search, run_as_dict)


@_api_view
def run_detail(request: HttpRequest, run_id: int) -> JsonResponse:
    run = selectors.run_get(user=request.user, run_id=run_id)
    return JsonResponse(run_as_dict(run)) if run is not None else _not_found("run")


class MetricsQueryForm(forms.Form):
    after_seq = forms.IntegerField(required=False, min_value=0, max_value=2**62)
    kind = forms.ChoiceField(required=False, choices=[("", "any")] + Metric.Kind.choices)
    limit = forms.IntegerField(required=False, min_value=1, max_value=MAX_METRICS)


@_api_view
def run_metrics(request: HttpRequest, run_id: int) -> JsonResponse:
    """The run's stored metric, evaluation and progress events after ``after_seq``, in seq
    order, at most ``limit``; ``next_after_seq`` continues from there (null when done)."""
    run = selectors.run_get(user=request.user, run_id=run_id)
    if run is None:
        return _not_found("run")
    form = MetricsQueryForm(request.GET)
    if not form.is_valid():
        return _bad_query(form)
    query = form.cleaned_data
    limit = query["limit"] or 1000
    events = selectors.run_metrics_since(run_id=run.pk, after_seq=query["after_seq"] or 0, kind=query["kind"] or None, limit=limit)
    return JsonResponse(
        {"run": run.pk, "results": events, "next_after_seq": events[-1]["seq"] if len(events) == limit else None}
    )
