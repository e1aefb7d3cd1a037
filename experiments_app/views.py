"""Thin views: parse the request, call a selector or a service, render."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_required
from django.contrib.messages.views import SuccessMessageMixin
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from experiments_app import compare, selectors, services
from experiments_app.forms import (
    CompareQueryForm, ExperimentNotesForm, LaunchForm, ListQueryForm, TeamCreateForm, TeamMemberAddForm, TeamRoleForm,
)
from experiments_app.health import health_report, health_verdict
from experiments_app.models import Experiment, Membership, Run, Team
from experiments_app.presets import DEFAULT_PRESET, preset_budgets, preset_table

PAGE_SIZE = 25
ROLE_PHRASES = {Membership.Role.ADMIN: "an admin", Membership.Role.MEMBER: "a member"}


def _list_page(request: HttpRequest, template: str, search: Any,
               when_empty: Callable[[], dict[str, Any]] | None = None) -> HttpResponse:
    """A list page: the query form, its choices, one page of ``search(user, filters)`` and
    ``unfiltered`` (whether nothing narrows the list; then an empty one adds ``when_empty()``
    to the context); 400 with the form's errors for a malformed query string."""
    form = ListQueryForm(request.GET)
    context: dict[str, Any] = {"form": form, "choices": selectors.list_choices(user=request.user)}
    if not form.is_valid():
        return render(request, template, {**context, "page": None}, status=400)
    filters = form.filters()
    items: QuerySet = search(user=request.user, filters=filters)
    page: Page = Paginator(items, PAGE_SIZE).get_page(form.cleaned_data.get("page"))
    context.update(page=page, unfiltered=filters == selectors.ListFilters())
    if when_empty is not None and context["unfiltered"] and not page.object_list:
        context.update(when_empty())
    return render(request, template, context)


@login_required
@require_GET
def experiment_list(request: HttpRequest) -> HttpResponse:
    """The list; while the user's teams have no experiment, the demo experiment's form."""
    return _list_page(request, "experiments/list.html", selectors.experiment_search,
                      when_empty=lambda: {"demo": LaunchForm.demo(user=request.user)})


@login_required
@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    return _list_page(request, "experiments/runs.html", selectors.run_search)


@login_required
@require_http_methods(["GET", "POST"])
def experiment_launch(request: HttpRequest) -> HttpResponse:
    """GET: the form, filled from ``?clone=<experiment id>`` if given, else from the default
    preset. POST with ``preset`` (a preset button, without JavaScript): the form again with
    that preset applied. POST: launch, or 400 with the form and its per-field errors (as every
    form of the site answers bad input); 503 with the form and the reason while the broker is
    down."""
    if request.method == "POST" and "preset" in request.POST:
        form = LaunchForm.from_preset(request.POST, user=request.user)
        return _launch_page(request, form, status=400 if form.is_bound else 200)
    if request.method == "POST":
        form = LaunchForm(request.POST, user=request.user)
        if form.is_valid():
            try:
                experiment = services.experiment_create(owner=request.user, **form.experiment_arguments())
            except ValidationError as exc:
                form.add_error(None, exc)
                if getattr(exc, "code", None) == "broker_down":  # not the input's fault: try again later
                    return _launch_page(request, form, status=503)
            else:
                messages.success(request, f"Launched {experiment.name}: {len(form.cleaned_data['seeds'])} run(s) queued.")
                return redirect("experiments:run", run_id=experiment.runs.order_by("seed").first().pk)
        return _launch_page(request, form, status=400)
    clone_id = request.GET.get("clone")
    if clone_id:
        initial = LaunchForm.initial_from(_experiment_or_404(request, _int_or_404(clone_id)))
        return _launch_page(request, LaunchForm(initial=initial, user=request.user))
    return _launch_page(request, LaunchForm.for_preset(DEFAULT_PRESET, user=request.user))


def _launch_page(request: HttpRequest, form: LaunchForm, status: int = 200) -> HttpResponse:
    """The launch page: the form, the presets with their frame budgets on the form's level and
    mode, and the run-time estimate from this installation's recent runs of that mode."""
    env_id, mode = str(form["env_id"].value() or ""), str(form["mode"].value() or "")
    speeds = selectors.run_speeds(user=request.user)
    context = {
        "form": form,
        "speed": speeds.get(mode),
        "presets": preset_budgets(env_id=env_id, mode=mode),
        "launch_data": {
            "presets": preset_table(),
            "active": form.preset.key if form.preset else None,
            "speeds": {name: asdict(speed) for name, speed in speeds.items()},
        },
    }
    return render(request, "experiments/launch.html", context, status=status)


@login_required
@require_GET
def experiment_detail(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = _experiment_or_404(request, experiment_id)
    notes_form = ExperimentNotesForm(initial={"notes": experiment.notes, "tags": ", ".join(experiment.tags)})
    return render(request, "experiments/detail.html", _experiment_context(request, experiment, notes_form))


@login_required
@require_POST
def experiment_notes(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = _experiment_or_404(request, experiment_id)
    form = ExperimentNotesForm(request.POST)
    if not form.is_valid():
        return render(request, "experiments/detail.html", _experiment_context(request, experiment, form), status=400)
    services.experiment_update_notes(
        user=request.user, experiment=experiment, notes=form.cleaned_data["notes"], tags=form.cleaned_data["tags"]
    )
    messages.success(request, "Notes and tags saved.")
    return redirect("experiments:experiment", experiment_id=experiment.pk)


@login_required
@require_POST
def experiment_stop(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = _experiment_or_404(request, experiment_id)
    stopped = services.experiment_stop(user=request.user, experiment=experiment)
    messages.success(request, f"Asked {len(stopped)} run(s) to stop.")
    return redirect("experiments:experiment", experiment_id=experiment.pk)


@login_required
@require_POST
def experiment_delete(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = _experiment_or_404(request, experiment_id)
    try:
        services.experiment_delete(user=request.user, experiment=experiment)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("experiments:experiment", experiment_id=experiment.pk)
    messages.success(request, f"Deleted {experiment.name}.")
    return redirect("experiments:list")


@login_required
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run_or_404(request, run_id)
    siblings = run.experiment.runs.order_by("seed")
    return render(
        request,
        "experiments/run.html",
        {
            "run": run,
            "experiment": run.experiment,
            "siblings": siblings,
            "state": selectors.run_state(run=run),
            "can_manage": selectors.user_can_manage(user=request.user, experiment=run.experiment),
        },
    )


@login_required
@require_POST
def run_stop(request: HttpRequest, run_id: int) -> HttpResponse:
    """Owner or team admin only (403 otherwise)."""
    run = services.run_stop(user=request.user, run=_run_or_404(request, run_id))
    if request.headers.get("Accept") == "application/json":
        return JsonResponse({"run": selectors.run_state(run=run)})
    return redirect("experiments:run", run_id=run.pk)


@login_required
@require_POST
def run_delete(request: HttpRequest, run_id: int) -> HttpResponse:
    """Owner or team admin only (403 otherwise); a queued or running run must be stopped first."""
    run = _run_or_404(request, run_id)
    try:
        services.run_delete(user=request.user, run=run)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("experiments:run", run_id=run.pk)
    messages.success(request, f"Deleted seed {run.seed} of {run.experiment.name}.")
    return redirect("experiments:experiment", experiment_id=run.experiment_id)


@login_required
@require_POST
def run_resume(request: HttpRequest, run_id: int) -> HttpResponse:
    """Owner or team admin only (403 otherwise); a run that cannot be resumed gets a message."""
    run = _run_or_404(request, run_id)
    try:
        services.run_resume(user=request.user, run=run)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("experiments:run", run_id=run.pk)


@login_required
@require_GET
def compare_page(request: HttpRequest) -> HttpResponse:
    """``?runs=1,2&experiments=3&metric=mean_return&smoothing=0.6[&format=json|csv|summary-csv]``:
    the page, or exactly what it shows as JSON or CSV. 400 for a malformed query string."""
    form = CompareQueryForm(request.GET)
    query = form.cleaned_data if form.is_valid() else {}
    comparison = None
    if query:
        try:
            comparison = compare.comparison_build(
                user=request.user, run_ids=query["runs"], experiment_ids=query["experiments"],
                metric=query["metric"], smoothing=query["smoothing"],
            )
        except compare.TooManyRuns as exc:
            form.add_error(None, str(exc))
    if comparison is None:
        if request.GET.get("format", "html") != "html":
            return JsonResponse({"error": "invalid query parameters", "fields": form.errors.get_json_data()}, status=400)
        return render(request, "experiments/compare.html", {"form": form, "comparison": None}, status=400)
    if query["format"] == "json":
        return JsonResponse(comparison)
    if query["format"] in ("csv", "summary-csv"):
        text = (compare.comparison_curves_csv if query["format"] == "csv" else compare.comparison_summary_csv)(comparison)
        response = HttpResponse(text, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="compare-{query["metric"]}-{query["format"]}.csv"'
        return response
    return render(
        request,
        "experiments/compare.html",
        {
            "form": form,
            "comparison": comparison,
            "run_fields": compare.RUN_FIELDS,
            "selection": {key: ",".join(map(str, query[key])) for key in ("runs", "experiments")},
            **compare.comparison_tables(comparison),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def team_list(request: HttpRequest) -> HttpResponse:
    """GET: the user's teams and a form to create one. POST: create it, the user its admin; or
    400 with the form and its errors."""
    form = TeamCreateForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            team = services.team_create(user=request.user, name=form.cleaned_data["name"])
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Created {team.name}: you are its admin. Add its members below.")
            return redirect("experiments:team", team_id=team.pk)
    teams = selectors.team_overview(user=request.user)
    return render(request, "experiments/teams.html", {"teams": teams, "form": form}, status=400 if form.is_bound else 200)


@login_required
@require_GET
def team_detail(request: HttpRequest, team_id: int) -> HttpResponse:
    team = _team_or_404(request, team_id)
    return render(request, "experiments/team.html", _team_context(request, team, member_form=TeamMemberAddForm()))


@login_required
@require_POST
def team_member_add(request: HttpRequest, team_id: int) -> HttpResponse:
    """Team admins only (403 otherwise); 400 with the form for an unknown user or a member."""
    team = _team_or_404(request, team_id)
    form = TeamMemberAddForm(request.POST)
    if form.is_valid():
        user, role = form.cleaned_data["username"], form.cleaned_data["role"]
        try:
            services.team_member_add(by=request.user, team=team, user=user, role=role)
        except ValidationError as exc:
            form.add_error("username", exc)
        else:
            messages.success(request, f"Added {user.get_username()} to {team.name} as {ROLE_PHRASES[role]}.")
            return redirect("experiments:team", team_id=team.pk)
    return render(request, "experiments/team.html", _team_context(request, team, member_form=form), status=400)


@login_required
@require_POST
def team_member_role(request: HttpRequest, team_id: int, user_id: int) -> HttpResponse:
    """Team admins only (403 otherwise); the last admin's refusal is shown as a message."""
    team = _team_or_404(request, team_id)
    member = _member_or_404(team, user_id)
    form = TeamRoleForm(request.POST)
    if not form.is_valid():
        return render(request, "experiments/team.html",
                      _team_context(request, team, member_form=TeamMemberAddForm(), role_form=form), status=400)
    role = form.cleaned_data["role"]
    try:
        services.team_member_set_role(by=request.user, team=team, user=member, role=role)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{member.get_username()} is now {ROLE_PHRASES[role]} of {team.name}.")
    return redirect("experiments:team", team_id=team.pk)


@login_required
@require_POST
def team_member_remove(request: HttpRequest, team_id: int, user_id: int) -> HttpResponse:
    """Team admins only (403 otherwise), or the member themselves (as leaving)."""
    team = _team_or_404(request, team_id)
    return _member_removed(request, team, _member_or_404(team, user_id))


@login_required
@require_POST
def team_leave(request: HttpRequest, team_id: int) -> HttpResponse:
    team = _team_or_404(request, team_id)
    return _member_removed(request, team, request.user)


def _member_removed(request: HttpRequest, team: Team, member: AbstractBaseUser) -> HttpResponse:
    """Remove ``member`` from ``team`` on the user's behalf, say what happened, and go where the
    user can still look: the team, or their teams if they left it."""
    name, leaving = team.name, member.pk == request.user.pk
    try:
        deleted = services.team_member_remove(by=request.user, team=team, user=member)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("experiments:team", team_id=team.pk)
    if deleted:
        messages.success(request, f"You left {name}, its last member; it had no experiments and is deleted.")
    elif leaving:
        messages.success(request, f"You left {name}.")
    else:
        messages.success(request, f"Removed {member.get_username()} from {name}.")
    return redirect("experiments:teams") if leaving else redirect("experiments:team", team_id=team.pk)


class PasswordChange(SuccessMessageMixin, auth_views.PasswordChangeView):
    """Django's password change, in the site's look; a form with errors is a 400, as on every
    page of the site, and PUT is not taken for POST."""

    template_name = "registration/password_change.html"
    success_url = reverse_lazy("experiments:list")
    success_message = "Your password is changed."
    http_method_names = ["get", "post"]

    def form_invalid(self, form: Form) -> HttpResponse:
        return self.render_to_response(self.get_context_data(form=form), status=400)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database, broker and channel layer answer and a worker replies to ping;
    503 otherwise. Public, for load balancers and orchestrators: anonymous callers get each
    check's verdict only, at most ``settings.HEALTH_CACHE_S`` old; logged-in users a fresh report with
    what each check found (hosts, versions, errors)."""
    report = health_report() if request.user.is_authenticated else health_verdict()
    return JsonResponse(report, status=200 if report["ok"] else 503)


def _experiment_context(request: HttpRequest, experiment: Experiment, notes_form: ExperimentNotesForm) -> dict[str, Any]:
    return {
        "experiment": experiment,
        "notes_form": notes_form,
        "can_manage": selectors.user_can_manage(user=request.user, experiment=experiment),
        "config": compare.experiment_config(experiment),
    }


def _experiment_or_404(request: HttpRequest, experiment_id: int) -> Experiment:
    experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
    if experiment is None:
        raise Http404("no such experiment")
    return experiment


def _run_or_404(request: HttpRequest, run_id: int) -> Run:
    run = selectors.run_get(user=request.user, run_id=run_id)
    if run is None:
        raise Http404("no such run")
    return run


def _team_or_404(request: HttpRequest, team_id: int) -> Team:
    team = selectors.team_get(user=request.user, team_id=team_id)
    if team is None:
        raise Http404("no such team")
    return team


def _member_or_404(team: Team, user_id: int) -> AbstractBaseUser:
    membership = selectors.team_membership_get(team=team, user_id=user_id)
    if membership is None:
        raise Http404("no such member")
    return membership.user


def _team_context(request: HttpRequest, team: Team, **forms: Form) -> dict[str, Any]:
    return {
        "team": team,
        "members": selectors.team_members(team=team),
        "is_admin": selectors.user_is_team_admin(user=request.user, team_id=team.pk),
        **forms,
    }


def _int_or_404(raw: str) -> int:
    """An id as URLs write it (ASCII digits only: int() would also take " +1", "1_0" or "١")."""
    if not (raw.isascii() and raw.isdigit()):
        raise Http404("not an id")
    return int(raw)
