"""Experiments' hyperparameters follow the engine's new guidance settings (2026-12-01).

``feedback_margin`` (a verdict's lead in mean advantage) became ``feedback_confidence`` (its lead
in standard errors): an old margin has no equivalent, so old experiments get the new default.
``teacher_temperature`` is new: old runs followed the LLM's raw distribution, which is 1.0.
"""

from django.db import migrations


def forward(apps, schema_editor):
    Experiment = apps.get_model("experiments_app", "Experiment")
    for experiment in Experiment.objects.all().only("pk", "hyperparameters"):
        values = dict(experiment.hyperparameters)
        if "feedback_margin" not in values and "teacher_temperature" in values:
            continue
        values.pop("feedback_margin", None)
        values.setdefault("feedback_confidence", 2.0)
        values.setdefault("teacher_temperature", 1.0)
        Experiment.objects.filter(pk=experiment.pk).update(hyperparameters=values)


def backward(apps, schema_editor):
    Experiment = apps.get_model("experiments_app", "Experiment")
    for experiment in Experiment.objects.all().only("pk", "hyperparameters"):
        values = dict(experiment.hyperparameters)
        values.pop("feedback_confidence", None)
        values.pop("teacher_temperature", None)
        values.setdefault("feedback_margin", 0.02)
        Experiment.objects.filter(pk=experiment.pk).update(hyperparameters=values)


class Migration(migrations.Migration):

    dependencies = [
        ("experiments_app", "0004_run_attempt"),
    ]

    operations = [migrations.RunPython(forward, backward)]
