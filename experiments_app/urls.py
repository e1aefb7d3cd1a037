from django.urls import path

from experiments_app import views

app_name = "experiments"

urlpatterns = [
    path("", views.experiment_list, name="list"),
    path("experiments/new/", views.experiment_launch, name="launch"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/stop/", views.run_stop, name="run_stop"),
    path("runs/<int:run_id>/resume/", views.run_resume, name="run_resume"),
]
