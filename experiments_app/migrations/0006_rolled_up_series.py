from django.db import migrations, models


def roll_up_new_series(apps, schema_editor):
    """Evaluation rows stored before these columns: fill them from the event data; then roll up
    every stored run again, for the series added with them (progress fps, evaluations). Uses the
    product's refresh, as 0003 does: the rollup rules live in one place."""
    from experiments_app.rollups import metric_rollups_refresh

    Metric = apps.get_model("experiments_app", "Metric")
    Run = apps.get_model("experiments_app", "Run")
    evaluations = Metric.objects.filter(kind="evaluation").only("id", "data")
    for metric in evaluations.iterator(chunk_size=2000):
        values = {}
        for name in ("sampled_mean_return", "sampled_success_rate"):
            value = metric.data.get(name) if isinstance(metric.data, dict) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[name] = float(value)
        if values:
            Metric.objects.filter(pk=metric.pk).update(**values)
    for run_id, last_seq in Run.objects.filter(last_seq__gt=0).values_list("pk", "last_seq").iterator():
        metric_rollups_refresh(run_id=run_id, first_seq=1, last_seq=last_seq)


class Migration(migrations.Migration):

    dependencies = [
        ("experiments_app", "0005_guidance_hyperparameters"),
    ]

    operations = [
        migrations.AddField(
            model_name="metric",
            name="sampled_mean_return",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="metric",
            name="sampled_success_rate",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.RunPython(roll_up_new_series, migrations.RunPython.noop),
    ]
