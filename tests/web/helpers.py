"""Builders shared by the web tests: users, hyperparameters, real engine Events, and the site's URL
patterns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model

from experiments_app import services
from experiments_app.hyperparameters import hyperparameter_defaults
from experiments_app.models import Experiment, Membership, Run, Team
from workers.events import Event, EventKind

PASSWORD = "a-long-test-password-42"


def make_user(username: str, team: Team | None, role: str = Membership.Role.MEMBER):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    if team is not None:
        services.team_member_add(team=team, user=user, role=role)
    return user


def small_hyperparameters(**overrides) -> dict:
    return {**hyperparameter_defaults(), "total_timesteps": 2048, "n_envs": 2, "n_steps": 64, **overrides}


def event(seq: int, kind: EventKind, timestep: int = 0, **data) -> Event:
    return Event(seq=seq, kind=kind, timestep=timestep, time=1_700_000_000.0 + seq, data=data)


def metrics_data(mean_return: float = 0.5, **overrides) -> dict:
    return {
        "mean_return": mean_return, "success_rate": 0.6, "mean_length": 30.0, "episodes": 10,
        "policy_loss": 0.1, "value_loss": 0.2, "entropy": 1.0, "approx_kl": 0.01, "clip_fraction": 0.1,
        "guidance_loss": 0.3, "guidance_coef": 0.8, "teacher_accuracy": 0.4, "teacher_accuracy_answered": 40,
        "probe_states": 50, "teacher_accuracy_unjudged": 0.3, "cache_hit_rate": 0.9,
        "llm_calls": 12, "llm_latency_ms": 30.0, "feedback_situations": 2, **overrides,
    }


def hint_data(**overrides) -> dict:
    return {
        "situation": "You see a red ball <b>ahead</b>.", "situation_key": "ball-ahead",
        "distribution": {"left": 0.1, "right": 0.1, "forward": 0.8}, "teacher_action": "forward",
        "action_taken": "left", "feedback": "Going forward worked better here.", "weight": 1.0, "source": "llm",
        **overrides,
    }


def frame_data() -> dict:
    width = height = 3
    grid = [2, 5, 0] * (width * height)
    grid[4 * 3 : 4 * 3 + 3] = [6, 0, 0]
    return {"width": width, "height": height, "grid": grid, "agent": [1, 1, 0], "view": [1, -2, 8, 5],
            "mission": "go to the red ball", "episode_step": 3, "action": "forward", "reward": 0.0,
            "episode_return": 0.0, "last_episode_return": 0.93}


def progress_data(timesteps: int, total: int = 2048) -> dict:
    return {"timesteps": timesteps, "total_timesteps": total, "fps": 250.0, "elapsed_s": 2.0, "eta_s": 5.0}


def record_finished_run(run, returns, *, frames_per_point: int = 1024, final_eval_return: float = 0.9,
                        teacher_accuracy: float | None = None) -> None:
    """Store a whole run through the sink's service, as the engine would report it: started,
    one METRICS event per value of ``returns`` (every ``frames_per_point`` frames), finished."""
    events = [event(1, EventKind.RUN_STARTED, 0, config={"total_timesteps": frames_per_point * len(returns)})]
    for i, value in enumerate(returns, start=1):
        events.append(event(i + 1, EventKind.METRICS, i * frames_per_point,
                            **metrics_data(value, teacher_accuracy=teacher_accuracy, guidance_coef=1.0 - i / len(returns))))
    summary = {"timesteps": frames_per_point * len(returns), "final_eval_return": final_eval_return, "final_eval_success": 1.0,
               "frames_to_0_9": frames_per_point, "teacher_accuracy_start": teacher_accuracy, "teacher_accuracy_end": teacher_accuracy,
               "llm_calls": 7}
    events.append(event(len(returns) + 2, EventKind.RUN_FINISHED, frames_per_point * len(returns), status="succeeded", summary=summary))
    services.run_record_events(run_id=run.pk, events=events)


@dataclass(frozen=True)
class SitePattern:
    """One URL pattern of the site: its namespaced name (None for an unnamed one), its full
    regex, its view, and the URL it gives for values of its parameters."""

    name: str | None
    regex: str
    params: tuple[str, ...]
    template: str
    view: Callable[..., Any]

    @property
    def key(self) -> str:
        """The name, or the regex of an unnamed pattern (Django's admin has a few)."""
        return self.name or self.regex

    def url(self, **values: object) -> str:
        """The URL with ``values`` for its parameters (others are ignored)."""
        return "/" + self.template % {name: values[name] for name in self.params}


def site_patterns() -> list[SitePattern]:
    """Every URL pattern of ROOT_URLCONF, included ones too, in resolution order: what the
    tests that must cover each endpoint enumerate, so that a new one cannot be forgotten."""
    from django.urls import URLResolver, get_resolver
    from django.utils.regex_helper import normalize

    def walk(patterns: list, prefix: str, namespaces: tuple[str, ...]) -> list[SitePattern]:
        found = []
        for pattern in patterns:
            regex = prefix + pattern.pattern.regex.pattern.removeprefix("^")
            if isinstance(pattern, URLResolver):
                found += walk(pattern.url_patterns, regex, namespaces + ((pattern.namespace,) if pattern.namespace else ()))
            else:
                template, params = normalize(regex)[0]
                name = ":".join([*namespaces, pattern.name]) if pattern.name else None
                found.append(SitePattern(name, regex, tuple(params), template, pattern.callback))
        return found

    return walk(get_resolver().url_patterns, "", ())


def database_state() -> tuple:
    """Every table's row count (the app's models and users), and every field a request could
    change: equal before and after a request that must write nothing."""
    from django.apps import apps

    models = [get_user_model(), *apps.get_app_config("experiments_app").get_models()]
    counts = tuple(model.objects.count() for model in models)
    return (
        counts,
        tuple(Experiment.objects.order_by("pk").values_list("name", "description", "notes", "tags")),
        tuple(Run.objects.order_by("pk").values_list("status", "stop_requested", "task_id", "error")),
        tuple(Membership.objects.order_by("pk").values_list("team_id", "user_id", "role")),
        tuple(get_user_model().objects.order_by("pk").values_list("password")),
    )
