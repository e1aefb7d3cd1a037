"""Subgoal guidance (2026-12-01): a hint may carry the teacher's plan, and experiments have two
new hyperparameters. Old experiments ran the action guidance, so they get ``guidance_kind``
"actions" and the new default ``subgoal_shaping`` (unused by that kind): without them their
hyperparameters would no longer validate, and editing their notes or tags would fail."""

from django.db import migrations, models

NEW = {"guidance_kind": "actions", "subgoal_shaping": 1.0}


def forward(apps, schema_editor):
    Experiment = apps.get_model("experiments_app", "Experiment")
    for experiment in Experiment.objects.all().only("pk", "hyperparameters"):
        values = dict(experiment.hyperparameters)
        if all(name in values for name in NEW):
            continue
        Experiment.objects.filter(pk=experiment.pk).update(hyperparameters={**NEW, **values})


def backward(apps, schema_editor):
    Experiment = apps.get_model("experiments_app", "Experiment")
    for experiment in Experiment.objects.all().only("pk", "hyperparameters"):
        values = {k: v for k, v in experiment.hyperparameters.items() if k not in NEW}
        Experiment.objects.filter(pk=experiment.pk).update(hyperparameters=values)


class Migration(migrations.Migration):

    dependencies = [
        ("experiments_app", "0008_run_rewound_attempt"),
    ]

    operations = [
        migrations.AddField(
            model_name="hint",
            name="plan",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.RunPython(forward, backward),
    ]
