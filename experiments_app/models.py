"""Teams own experiments; an experiment is one configuration trained once per seed (a Run);
a run's persisted events are Metric and Hint rows, numbered by the engine's ``seq``."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from experiments_app.hyperparameters import OWN_FIELDS, experiment_problems
from workers.config import Mode


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        ADMIN = "admin", "Admin"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="membership_unique_user_team")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class Experiment(models.Model):
    """What to train: level, mode, teacher and hyperparameters. Immutable once launched but
    for its notes and tags (services.experiment_update_notes); to change the rest, clone it."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="experiments")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="experiments")
    env_id = models.CharField("level", max_length=100)
    mode = models.CharField(max_length=20, choices=[(m.value, m.value) for m in Mode])
    teacher_model = models.CharField(max_length=200, blank=True, help_text="Empty when the mode uses no LLM.")
    hyperparameters = models.JSONField(default=dict, help_text="RunConfig fields other than level, mode, seed and teacher.")
    tags = models.JSONField(default=list, blank=True)
    notes = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["team", "-created"], name="experiment_team_created"),
            # The list's filters and sorts, each within the user's teams.
            models.Index(fields=["team", "name"], name="experiment_team_name"),
            models.Index(fields=["team", "mode"], name="experiment_team_mode"),
            models.Index(fields=["team", "env_id"], name="experiment_team_env"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not isinstance(self.tags, list) or not all(isinstance(t, str) for t in self.tags):
            raise ValidationError({"tags": "tags must be a list of strings"})
        errors = experiment_problems(
            env_id=self.env_id, mode=self.mode, teacher_model=self.teacher_model, hyperparameters=self.hyperparameters
        )
        own = {name: message for name, message in errors.items() if name in OWN_FIELDS}
        rest = [f"{name}: {message}" for name, message in errors.items() if name not in OWN_FIELDS]
        if own or rest:
            raise ValidationError({**own, **({"hyperparameters": rest} if rest else {})})


class Run(models.Model):
    """One seed of an experiment, from queued to a final status. Progress fields mirror the
    latest PROGRESS event; ``last_seq`` is the highest event number stored for it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        INTERRUPTED = "interrupted", "Interrupted"

    FINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
    """A worker trains these or will: they count against their owner's cap
    (``settings.MAX_ACTIVE_RUNS_PER_USER``) and cannot be deleted."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    seed = models.IntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    worker_host = models.CharField(max_length=200, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    attempt = models.PositiveIntegerField(
        default=0,
        help_text="Counts the claims of the run by a worker (services.run_claim); the claiming worker writes "
        "only while the run still carries its attempt.",
    )
    created = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True, help_text="When its training task was last sent.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    timesteps = models.BigIntegerField(default=0)
    total_timesteps = models.BigIntegerField(default=0)
    fps = models.FloatField(null=True, blank=True)
    eta_s = models.FloatField(null=True, blank=True)
    summary = models.JSONField(null=True, blank=True)
    checkpoint_path = models.CharField(max_length=500, blank=True)
    teacher_fault = models.TextField(blank=True, help_text="Why the teacher was dropped mid-run, if it was.")
    error = models.TextField(blank=True)
    last_seq = models.BigIntegerField(default=0)
    final_eval_return = models.FloatField(
        null=True, blank=True, help_text="The summary's final_eval_return, as a column: lists sort by it."
    )
    stop_requested = models.BooleanField(default=False)
    rewound_attempt = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="The last attempt that deleted stored events (it started over, or resumed from a checkpoint).",
    )

    class Meta:
        ordering = ["experiment", "seed"]
        constraints = [models.UniqueConstraint(fields=["experiment", "seed"], name="run_unique_experiment_seed")]
        indexes = [
            # run_mark_interrupted: running runs by heartbeat age.
            models.Index(fields=["status", "heartbeat_at"], name="run_status_heartbeat"),
            # The runs list's sorts, and the experiments list's status filter (EXISTS per experiment).
            models.Index(fields=["-created"], name="run_created"),
            models.Index(fields=["final_eval_return"], name="run_final_return"),
            models.Index(fields=["experiment", "status"], name="run_experiment_status"),
        ]

    def __str__(self) -> str:
        return f"{self.experiment.name} / seed {self.seed}"

    @property
    def group_name(self) -> str:
        """The channel-layer group its live updates go to."""
        return f"run-{self.pk}"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES

    @property
    def progress_fraction(self) -> float:
        return min(1.0, self.timesteps / self.total_timesteps) if self.total_timesteps else 0.0


class Metric(models.Model):
    """A persisted METRICS, EVALUATION or PROGRESS event. The charted values are columns; the
    event's whole data stays in ``data``."""

    class Kind(models.TextChoices):
        METRICS = "metrics"
        EVALUATION = "evaluation"
        PROGRESS = "progress"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metrics")
    seq = models.BigIntegerField()
    kind = models.CharField(max_length=12, choices=Kind.choices)
    timestep = models.BigIntegerField()
    time = models.FloatField(help_text="Unix time the engine emitted it.")
    mean_return = models.FloatField(null=True, blank=True)
    success_rate = models.FloatField(null=True, blank=True)
    teacher_accuracy = models.FloatField(null=True, blank=True)
    guidance_coef = models.FloatField(null=True, blank=True)
    fps = models.FloatField(null=True, blank=True)
    sampled_mean_return = models.FloatField(null=True, blank=True)
    sampled_success_rate = models.FloatField(null=True, blank=True)
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="metric_unique_run_seq")]
        # The unique constraint's index serves the back-fill (run, seq > n); this one the
        # compare page's and the API's reads of one kind (run, kind, seq > n).
        indexes = [models.Index(fields=["run", "kind", "seq"], name="metric_run_kind_seq")]


class Hint(models.Model):
    """A persisted HINT event: what the teacher said in a situation and what the student did."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="hints")
    seq = models.BigIntegerField()
    timestep = models.BigIntegerField()
    time = models.FloatField()
    situation = models.TextField()
    situation_key = models.CharField(max_length=200, blank=True)
    distribution = models.JSONField(default=dict)
    teacher_action = models.CharField(max_length=20, blank=True, null=True)
    action_taken = models.CharField(max_length=20)
    feedback = models.TextField(blank=True, null=True)
    weight = models.FloatField(null=True, blank=True)
    source = models.CharField(max_length=10, blank=True)
    plan = models.JSONField(null=True, blank=True)
    """Subgoal guidance: the plan state, the current subgoal, the subgoals reached this episode
    and the feedback the teacher reads (``PlannedEnv.plan_view``); null for action guidance."""

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="hint_unique_run_seq")]


class MetricRollup(models.Model):
    """One charted series (``rollups.SERIES``: a column of one kind of Metric row) of a run's
    rows whose seq lies in [chunk << level, (chunk + 1) << level): how many rows have a value,
    the sum of their timesteps, and the sum, least and greatest of their values. Kept up to
    date with the rows (``rollups.metric_rollups_refresh``, inside
    ``services.run_record_events``) for every level from ``rollups.LEVEL_MIN`` up, so the
    compare page and a long run's page read at most a few hundred of these a run and series
    instead of all its rows."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    metric = models.CharField(max_length=20)
    level = models.PositiveSmallIntegerField()
    chunk = models.BigIntegerField()
    n = models.IntegerField()
    timestep_sum = models.FloatField()
    value_sum = models.FloatField()
    value_min = models.FloatField()
    value_max = models.FloatField()

    class Meta:
        # Its index serves the refresh (run, metric, level, chunk range) and the compare read
        # (runs, metric, level).
        constraints = [
            models.UniqueConstraint(fields=["run", "metric", "level", "chunk"], name="metricrollup_unique_chunk")
        ]
