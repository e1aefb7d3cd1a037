from django.urls import path

from experiments_app import api, views

app_name = "experiments"

urlpatterns = [
    path("", views.experiment_list, name="list"),
    path("runs/", views.run_list, name="runs"),
    path("compare/", views.compare_page, name="compare"),
    path("experiments/new/", views.experiment_launch, name="launch"),
    path("experiments/<int:experiment_id>/", views.experiment_detail, name="experiment"),
    path("experiments/<int:experiment_id>/notes/", views.experiment_notes, name="experiment_notes"),
    path("experiments/<int:experiment_id>/stop/", views.experiment_stop, name="experiment_stop"),
    path("experiments/<int:experiment_id>/delete/", views.experiment_delete, name="experiment_delete"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/stop/", views.run_stop, name="run_stop"),
    path("runs/<int:run_id>/resume/", views.run_resume, name="run_resume"),
    path("runs/<int:run_id>/delete/", views.run_delete, name="run_delete"),
    path("teams/", views.team_list, name="teams"),
    path("teams/<int:team_id>/", views.team_detail, name="team"),
    path("teams/<int:team_id>/members/", views.team_member_add, name="team_member_add"),
    path("teams/<int:team_id>/members/<int:user_id>/role/", views.team_member_role, name="team_member_role"),
    path("teams/<int:team_id>/members/<int:user_id>/remove/", views.team_member_remove, name="team_member_remove"),
    path("teams/<int:team_id>/leave/", views.team_leave, name="team_leave"),
    path("api/experiments/", api.experiment_list, name="api_experiments"),
    path("api/experiments/<int:experiment_id>/", api.experiment_detail, name="api_experiment"),
    path("api/runs/", api.run_list, name="api_runs"),
    path("api/runs/<int:run_id>/", api.run_detail, name="api_run"),
    path("api/runs/<int:run_id>/metrics/", api.run_metrics, name="api_run_metrics"),
]
