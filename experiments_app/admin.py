from django.contrib import admin

from experiments_app.models import Experiment, Hint, Membership, Metric, Run, Team


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "created")
    search_fields = ("name",)
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "team", "role")
    list_filter = ("role", "team")


class RunInline(admin.TabularInline):
    model = Run
    extra = 0
    fields = ("seed", "status", "timesteps", "total_timesteps", "worker_host")
    readonly_fields = fields
    show_change_link = True


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "owner", "env_id", "mode", "teacher_model", "created")
    list_filter = ("mode", "team", "env_id")
    search_fields = ("name", "description", "notes")
    inlines = [RunInline]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "experiment", "seed", "status", "timesteps", "total_timesteps", "worker_host", "heartbeat_at")
    list_filter = ("status",)
    search_fields = ("experiment__name", "task_id", "worker_host")
    readonly_fields = ("last_seq", "summary", "created", "started_at", "finished_at", "heartbeat_at")


@admin.register(Metric)
class MetricAdmin(admin.ModelAdmin):
    list_display = ("run", "seq", "kind", "timestep", "mean_return", "success_rate", "teacher_accuracy")
    list_filter = ("kind",)
    raw_id_fields = ("run",)


@admin.register(Hint)
class HintAdmin(admin.ModelAdmin):
    list_display = ("run", "seq", "timestep", "teacher_action", "action_taken", "source")
    raw_id_fields = ("run",)
