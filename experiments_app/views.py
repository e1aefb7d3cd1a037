"""Thin views: parse the request, call a selector or a service, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from experiments_app import selectors, services
from experiments_app.forms import LaunchForm
from experiments_app.health import health_report


@login_required
@require_GET
def experiment_list(request: HttpRequest) -> HttpResponse:
    experiments = selectors.experiment_list(user=request.user)
    return render(request, "experiments/list.html", {"experiments": experiments})


@login_required
@require_http_methods(["GET", "POST"])
def experiment_launch(request: HttpRequest) -> HttpResponse:
    """GET: the form, filled from ``?clone=<experiment id>`` if given. POST: launch."""
    if request.method == "POST":
        form = LaunchForm(request.POST, user=request.user)
        if form.is_valid():
            data = form.cleaned_data
            try:
                experiment = services.experiment_create(
                    owner=request.user,
                    team=data["team"],
                    name=data["name"],
                    description=data["description"],
                    env_id=data["env_id"],
                    mode=data["mode"],
                    teacher_model=data["teacher_model"],
                    hyperparameters=data["hyperparameters"],
                    seeds=data["seeds"],
                    tags=data["tags"],
                    notes=data["notes"],
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Launched {experiment.name}: {len(data['seeds'])} run(s) queued.")
                return redirect("experiments:run", run_id=experiment.runs.order_by("seed").first().pk)
    else:
        initial = {}
        clone_id = request.GET.get("clone")
        if clone_id:
            source = selectors.experiment_get(user=request.user, experiment_id=_int_or_404(clone_id))
            if source is None:
                raise Http404("no such experiment")
            initial = LaunchForm.initial_from(source)
        form = LaunchForm(initial=initial, user=request.user)
    return render(request, "experiments/launch.html", {"form": form})


@login_required
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get(user=request.user, run_id=run_id)
    if run is None:
        raise Http404("no such run")
    siblings = run.experiment.runs.order_by("seed")
    return render(
        request,
        "experiments/run.html",
        {"run": run, "experiment": run.experiment, "siblings": siblings, "state": selectors.run_state(run=run)},
    )


@login_required
@require_POST
def run_stop(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get(user=request.user, run_id=run_id)
    if run is None:
        raise Http404("no such run")
    run = services.run_request_stop(run=run)
    if request.headers.get("Accept") == "application/json":
        return JsonResponse({"run": selectors.run_state(run=run)})
    return redirect("experiments:run", run_id=run.pk)


@login_required
@require_POST
def run_resume(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get(user=request.user, run_id=run_id)
    if run is None:
        raise Http404("no such run")
    try:
        services.run_resume(run=run)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("experiments:run", run_id=run.pk)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database, broker and channel layer answer and a worker replies to ping;
    503 otherwise. Each check says what it found."""
    report = health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)


def _int_or_404(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise Http404("not an id") from None
