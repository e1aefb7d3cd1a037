from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("experiments_app", "0003_metric_rollups"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="attempt",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Counts the claims of the run by a worker (services.run_claim); the claiming worker writes "
                "only while the run still carries its attempt.",
            ),
        ),
    ]
