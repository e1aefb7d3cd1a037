"""The launch form. Level and teacher choices are what this installation has (the engine's
``available_levels`` and ``available_models``); each hyperparameter is its own field with the
range ``experiments_app.hyperparameters`` allows, a readable label, the RunConfig docstring as
help text, and a place in one of HYPERPARAMETER_GROUPS. A form can start from a preset
(``experiments_app.presets``)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import NON_FIELD_ERRORS

from experiments_app.hyperparameters import CHOICES, RANGES, experiment_problems, hyperparameter_fields
from experiments_app.models import Experiment, Membership, Run, Team
from experiments_app.presets import PRESETS, QUICK, Preset, hyperparameters_for
from experiments_app.selectors import COMPARABLE, ListFilters, team_list, user_get
from workers.config import DEFAULT_ENV, Mode, RunConfig

HP_PREFIX = "hp_"
SEEDS_PATTERN = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$", re.ASCII)  # "٣" is no seed
MAX_TAGS = 20
MAX_TAG_LENGTH = 40
MAX_TAGS_INPUT_LENGTH = 1000
"""The comma-separated tags as typed: room for MAX_TAGS tags of MAX_TAG_LENGTH characters."""
MAX_TEXT_LENGTH = 10_000
"""Descriptions and notes: a page of text, not a data store."""


def level_choices() -> list[tuple[str, str]]:
    from workers.levels import available_levels

    return [(level, level) for level in available_levels()]


def teacher_choices() -> list[tuple[str, str]]:
    from workers.teachers import available_models

    return [("", "(none)")] + [(name, name) for name in available_models()]


def mode_choices() -> list[tuple[str, str]]:
    """Each mode with its docstring from workers.config.Mode, e.g. "ppo: The student alone."."""
    import ast
    import inspect

    from workers import config

    body = next(n for n in ast.parse(inspect.getsource(config)).body if isinstance(n, ast.ClassDef) and n.name == "Mode").body
    docs = {
        node.targets[0].id: " ".join(str(nxt.value.value).split())
        for node, nxt in zip(body, body[1:])
        if isinstance(node, ast.Assign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
    }
    return [(m.value, f"{m.value}: {docs[m.name]}" if m.name in docs else m.value) for m in Mode]


def parse_seeds(raw: str) -> list[int]:
    """"0, 1, 5-7" -> [0, 1, 5, 6, 7]. Raises ValidationError with the offending part."""
    seeds: list[int] = []
    for part in raw.split(","):
        if not part.strip():
            continue
        match = SEEDS_PATTERN.match(part)
        if not match:
            raise forms.ValidationError(f"{part.strip()!r} is not a seed or a range such as 0-4")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if high < low:
            raise forms.ValidationError(f"range {part.strip()!r} runs backwards")
        if high - low >= settings.MAX_SEEDS_PER_EXPERIMENT:
            raise forms.ValidationError(f"at most {settings.MAX_SEEDS_PER_EXPERIMENT} seeds per experiment")
        seeds.extend(range(low, high + 1))
    if not seeds:
        raise forms.ValidationError("give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise forms.ValidationError("each seed may appear once")
    if len(seeds) > settings.MAX_SEEDS_PER_EXPERIMENT:
        raise forms.ValidationError(f"at most {settings.MAX_SEEDS_PER_EXPERIMENT} seeds per experiment")
    if max(seeds) > 2**31 - 1:
        raise forms.ValidationError("seeds must be below 2^31")
    return seeds


def parse_tags(raw: str) -> list[str]:
    tags = [t.strip() for t in raw.split(",") if t.strip()]
    if len(tags) > MAX_TAGS:
        raise forms.ValidationError(f"at most {MAX_TAGS} tags")
    too_long = [t for t in tags if len(t) > MAX_TAG_LENGTH]
    if too_long:
        raise forms.ValidationError(f"tags are at most {MAX_TAG_LENGTH} characters: {too_long[0][:MAX_TAG_LENGTH]}...")
    return list(dict.fromkeys(tags))


BUDGET = "total_timesteps"
"""The one hyperparameter shown beside the presets; the others are folded under "Advanced"."""
HYPERPARAMETER_GROUPS: tuple[tuple[str, dict[str, str]], ...] = (
    ("PPO: the student", {
        "n_envs": "Parallel environments",
        "policy": "Student network",
        "n_steps": "Steps per environment per rollout",
        "batch_size": "Minibatch size",
        "n_epochs": "Epochs per rollout",
        "learning_rate": "Learning rate",
        "gamma": "Discount (gamma)",
        "gae_lambda": "GAE lambda",
        "clip_range": "Clip range",
        "ent_coef": "Entropy bonus",
        "vf_coef": "Value-loss weight",
        "max_grad_norm": "Gradient clipping (max norm)",
    }),
    ("Guidance: the teacher's advice", {
        "subgoal_shaping": "Reward of a reached subgoal (subgoal guidance)",
        "guidance_coef": "Guidance strength at the start",
        "guidance_anneal_frac": "Guidance fades out over (fraction of the run)",
        "guidance_epochs": "Distillation passes per rollout",
        "guidance_tolerance": "Advice already followed below (nats)",
        "teacher_temperature": "Teacher temperature",
        "teacher_timeout_s": "Teacher timeout (s)",
    }),
    ("Feedback: the student's verdicts", {
        "feedback_min_visits": "Tries before an action counts",
        "feedback_confidence": "Verdict margin (standard errors)",
    }),
    ("Evaluation and checkpoints", {
        "eval_interval": "Evaluate every (frames)",
        "eval_episodes": "Evaluation episodes",
        "probe_states": "Probe states for teacher accuracy",
        "return_threshold": "Return threshold",
        "checkpoint_interval": "Checkpoint every (rollouts)",
    }),
    ("Live view", {
        "frame_interval_s": "Seconds between live frames",
        "hint_interval_s": "Seconds between hints",
    }),
)
"""Every hyperparameter but BUDGET and KIND, each in one group, with its label."""
KIND = "guidance_kind"
"""The one hyperparameter shown with the general fields: what the teacher gives is a choice as
basic as the mode."""
LABELS: dict[str, str] = {BUDGET: "Frames to train", KIND: "The teacher gives",
                          **{k: v for _, group in HYPERPARAMETER_GROUPS for k, v in group.items()}}
GENERAL_FIELDS = ("name", "team", "description", "env_id", "mode", "teacher_model", "seeds", "tags", "notes")
DEMO = {
    "name": "Demo: quick look",
    "description": "The quick-look preset on the paper's level: the LLM teaches a PPO agent to reach the red ball, and "
    "the agent's feedback corrects the LLM. Clone it to change anything.",
    "tags": "demo",
}
"""The demo experiment's own fields (the empty experiments list offers it)."""


def _hyperparameter_field(kind: type, default: Any, help_text: str, name: str) -> forms.Field:
    bounds = RANGES.get(name)
    common = {"label": LABELS.get(name, name), "initial": default, "help_text": help_text}
    if name in CHOICES:
        return forms.ChoiceField(choices=[(c, c) for c in CHOICES[name]], **common)
    if kind is int:
        return forms.IntegerField(min_value=int(bounds.low), max_value=int(bounds.high), **common)
    if kind is float:
        return forms.FloatField(
            min_value=bounds.low, max_value=bounds.high, widget=forms.NumberInput(attrs={"step": "any"}), **common
        )
    return forms.CharField(**common)


class LaunchForm(forms.Form):
    """One experiment and its seeds; ``experiment_arguments()`` gives what
    ``services.experiment_create`` needs besides ``owner``. The web form and the ``launch``
    command both validate with it."""

    name = forms.CharField(max_length=200)
    team = forms.ModelChoiceField(queryset=None, empty_label=None)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=MAX_TEXT_LENGTH)
    env_id = forms.ChoiceField(label="Level", initial=DEFAULT_ENV)
    mode = forms.ChoiceField(initial=Mode.BIDIRECTIONAL.value, help_text="Who teaches whom.")
    teacher_model = forms.ChoiceField(label="Teacher model", required=False, help_text="The LLM; only the ppo and oracle modes need none.")
    seeds = forms.CharField(initial="0", max_length=200, help_text='One run per seed: "0, 1, 2" or "0-4".')
    tags = forms.CharField(required=False, max_length=MAX_TAGS_INPUT_LENGTH, help_text="Comma-separated.")
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=MAX_TEXT_LENGTH)

    def __init__(self, *args: Any, user: AbstractBaseUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.preset: Preset | None = None
        """The preset the initial values come from (``for_preset``), if any."""
        self.fields["team"].queryset = team_list(user=user)
        self.fields["env_id"].choices = level_choices()
        self.fields["mode"].choices = mode_choices()
        models = teacher_choices()
        self.fields["teacher_model"].choices = models
        installed = [name for name, _ in models if name]
        if installed:  # the engine's default teacher when it is installed, else the first one
            self.fields["teacher_model"].initial = RunConfig.teacher_model if RunConfig.teacher_model in installed else installed[0]
        for name, kind, default, help_text in hyperparameter_fields():
            self.fields[HP_PREFIX + name] = _hyperparameter_field(kind, default, help_text, name)

    @classmethod
    def for_preset(cls, preset: Preset, *, user: AbstractBaseUser, env_id: str = DEFAULT_ENV,
                   mode: str = RunConfig.mode.value, **general: Any) -> "LaunchForm":
        """An unbound form with ``preset``'s seeds and hyperparameters on ``env_id`` in ``mode``
        (``presets.hyperparameters_for``), and the other general fields as given."""
        values = hyperparameters_for(preset=preset, env_id=env_id, mode=mode)
        initial = {**general, "env_id": env_id, "mode": mode, "seeds": preset.seeds}
        form = cls(initial=initial | {HP_PREFIX + name: value for name, value in values.items()}, user=user)
        form.preset = preset
        return form

    @classmethod
    def from_preset(cls, data: Mapping[str, str], *, user: AbstractBaseUser) -> "LaunchForm":
        """What a preset button posts (the answer without JavaScript): the form again, unbound,
        with the preset ``data["preset"]`` applied on ``data``'s level and mode and the other
        general fields as typed. An unknown preset: the form bound to ``data``, with that error."""
        preset = PRESETS.get(data.get("preset", ""))
        if preset is None:
            form = cls(data, user=user)
            form.is_valid()
            form.add_error(None, f"unknown preset: choose one of {', '.join(PRESETS)}")
            return form
        general = {name: data.get(name, "") for name in GENERAL_FIELDS if name != "seeds"}
        form = cls.for_preset(preset, user=user, **general)
        if data.get(HP_PREFIX + KIND) in CHOICES[KIND]:  # a preset leaves the guidance kind as chosen
            form.initial[HP_PREFIX + KIND] = data[HP_PREFIX + KIND]
        return form

    @classmethod
    def demo(cls, *, user: AbstractBaseUser) -> "LaunchForm":
        """The demo experiment, ready to post: the quick-look preset on the paper's level,
        bidirectional, with the form's default teacher, in the user's first team."""
        team = team_list(user=user).first()
        return cls.for_preset(QUICK, user=user, mode=Mode.BIDIRECTIONAL.value, team=team.pk if team else None, **DEMO)

    @classmethod
    def initial_from(cls, experiment: Experiment) -> dict[str, Any]:
        """Initial values that reproduce ``experiment`` (the "clone and edit" form)."""
        initial: dict[str, Any] = {
            "name": f"{experiment.name} (copy)",
            "team": experiment.team_id,
            "description": experiment.description,
            "env_id": experiment.env_id,
            "mode": experiment.mode,
            "teacher_model": experiment.teacher_model,
            "seeds": ", ".join(str(run.seed) for run in experiment.runs.all()) or "0",
            "tags": ", ".join(experiment.tags),
            "notes": experiment.notes,
        }
        initial.update({HP_PREFIX + name: value for name, value in experiment.hyperparameters.items()})
        return initial

    def experiment_arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``services.experiment_create``, but ``owner``."""
        names = ("team", "name", "description", "env_id", "mode", "teacher_model", "hyperparameters", "seeds", "tags", "notes")
        return {name: self.cleaned_data[name] for name in names}

    def has_field_errors(self) -> bool:
        """Whether a field has an error (not only the form as a whole, such as the run cap)."""
        return any(name != NON_FIELD_ERRORS for name in self.errors)

    def general_fields(self) -> list[forms.BoundField]:
        general = [self[name] for name in self.fields if not name.startswith(HP_PREFIX)]
        at = next(i for i, field in enumerate(general) if field.name == "teacher_model")
        return general[:at] + [self[HP_PREFIX + KIND]] + general[at:]

    def budget_field(self) -> forms.BoundField:
        return self[HP_PREFIX + BUDGET]

    def hyperparameter_groups(self) -> list[tuple[str, list[forms.BoundField]]]:
        """(title, fields) of HYPERPARAMETER_GROUPS, the "Advanced" part of the form."""
        return [(title, [self[HP_PREFIX + name] for name in group]) for title, group in HYPERPARAMETER_GROUPS]

    def advanced_has_errors(self) -> bool:
        """Whether a field under "Advanced" has an error (the page unfolds it then)."""
        return any(field.errors for _, fields_ in self.hyperparameter_groups() for field in fields_)

    def clean_seeds(self) -> list[int]:
        return parse_seeds(self.cleaned_data["seeds"])

    def clean_tags(self) -> list[str]:
        return parse_tags(self.cleaned_data["tags"])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        hyperparameters = {
            name: data[HP_PREFIX + name] for name, _, _, _ in hyperparameter_fields() if HP_PREFIX + name in data
        }
        data["hyperparameters"] = hyperparameters
        own = ("env_id", "mode")
        if any(name not in data for name in own) or len(hyperparameters) < len(hyperparameter_fields()):
            return data  # a field-level error is already shown; the run-level check needs them all
        errors = experiment_problems(
            env_id=data["env_id"], mode=data["mode"], teacher_model=data.get("teacher_model") or "",
            hyperparameters=hyperparameters,
        )
        for name, message in errors.items():
            if name == "teacher_model" and len(self.fields["teacher_model"].choices) <= 1:
                message = "no teacher model is installed; choose the ppo or oracle mode"
            self.add_error(name if name in self.fields else HP_PREFIX + name, message)
        return data


# --- query strings ----------------------------------------------------------------------------


MAX_IDS = 1000
"""Bounds the SQL IN list a query string can ask for."""


class IdListField(forms.Field):
    """Ids given as repeated parameters (``?runs=1&runs=2``, as checkboxes send them), comma
    lists (``?runs=1,2``) or both; cleans to a list of distinct ints in order."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[int]:
        parts = [p.strip() for raw in (value or []) for p in str(raw).split(",") if p.strip()]
        ids: list[int] = []
        for part in parts:
            # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
            if not (part.isascii() and part.isdigit()) or len(part) > 18:
                raise forms.ValidationError(f"{part[:20]!r} is not an id")
            ids.append(int(part))
        if len(ids) > MAX_IDS:
            raise forms.ValidationError(f"at most {MAX_IDS} ids")
        return list(dict.fromkeys(ids))


def _choices(values: Any) -> list[tuple[str, str]]:
    return [("", "any")] + [(str(v), str(v)) for v in values]


class ListQueryForm(forms.Form):
    """The runs and experiments lists' query string (also the API's): search, filters, sort,
    page. ``filters()`` gives them to the selectors."""

    q = forms.CharField(required=False, max_length=200, label="Search")
    status = forms.ChoiceField(required=False, choices=_choices(Run.Status.values))
    level = forms.CharField(required=False, max_length=100)
    mode = forms.ChoiceField(required=False, choices=_choices(m.value for m in Mode))
    tag = forms.CharField(required=False, max_length=MAX_TAG_LENGTH)
    owner = forms.CharField(required=False, max_length=150)
    sort = forms.ChoiceField(
        required=False,
        choices=[
            ("-created", "newest"), ("created", "oldest"), ("name", "name A→Z"), ("-name", "name Z→A"),
            ("-final_return", "final return, best"), ("final_return", "final return, worst"),
        ],
    )
    page = forms.IntegerField(required=False, min_value=1)

    def filters(self) -> ListFilters:
        names = {f.name for f in fields(ListFilters)}
        return ListFilters(**{k: v for k, v in self.cleaned_data.items() if k in names and v})


class CompareQueryForm(forms.Form):
    """The compare page's query string, which reproduces the view."""

    runs = IdListField(required=False)
    experiments = IdListField(required=False)
    metric = forms.ChoiceField(required=False, choices=[(m, m) for m in COMPARABLE])
    smoothing = forms.FloatField(required=False, min_value=0.0, max_value=0.99)
    format = forms.ChoiceField(required=False, choices=[(f, f) for f in ("html", "json", "csv", "summary-csv")])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        data["metric"] = data.get("metric") or COMPARABLE[0]
        data["smoothing"] = data.get("smoothing") or 0.0
        data["format"] = data.get("format") or "html"
        return data


class ExperimentNotesForm(forms.Form):
    """What any team member may change on an experiment. Both fields must be in the request,
    empty or not: the form replaces both, so a request without them (a script's JSON body, a
    truncated post) would otherwise erase the notes."""

    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False, max_length=MAX_TEXT_LENGTH)
    tags = forms.CharField(required=False, max_length=MAX_TAGS_INPUT_LENGTH, help_text="Comma-separated.")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for name in self.fields:
            if name not in self.data:
                self.add_error(name, "is missing from the request (send it empty to clear it)")
        return data

    def clean_tags(self) -> list[str]:
        return parse_tags(self.cleaned_data["tags"])


# --- teams ------------------------------------------------------------------------------------


def printable(text: str) -> None:
    """Refuse control and invisible formatting characters (a right-to-left override would make
    a name read as another)."""
    if any(unicodedata.category(char).startswith("C") for char in text):
        raise forms.ValidationError("use letters, digits, spaces and punctuation only: no control or invisible characters")


class TeamCreateForm(forms.Form):
    name = forms.CharField(
        max_length=Team._meta.get_field("name").max_length, validators=[printable], help_text="You become its admin."
    )


class TeamMemberAddForm(forms.Form):
    """Who to add to a team, by username; cleans ``username`` to the user."""

    username = forms.CharField(max_length=get_user_model()._meta.get_field("username").max_length,
                               help_text="Their login name: they need an account (make user).")
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)

    def clean_username(self) -> AbstractBaseUser:
        user = user_get(username=self.cleaned_data["username"])
        if user is None:
            raise forms.ValidationError(f'no user is named "{self.cleaned_data["username"]}"')
        return user


class TeamRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)
