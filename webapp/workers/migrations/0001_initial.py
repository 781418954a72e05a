import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("transfers", "0002_decision"),
        ("trials", "0002_waiting_status"),
    ]

    operations = [
        migrations.CreateModel(
            name="Worker",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(help_text="The Celery node name.", max_length=200, unique=True)),
                ("host", models.CharField(blank=True, max_length=200)),
                ("queues", models.CharField(blank=True, max_length=200)),
                ("gpu_name", models.CharField(blank=True, max_length=200)),
                ("gpu_memory_mb", models.PositiveIntegerField(blank=True, null=True)),
                ("trials_done", models.PositiveIntegerField(default=0)),
                ("started_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("heartbeat_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("stopped_at", models.DateTimeField(blank=True, null=True)),
                ("current_transfer", models.ForeignKey(blank=True, null=True,
                                                       on_delete=django.db.models.deletion.SET_NULL,
                                                       related_name="+", to="transfers.transfer")),
                ("current_trial", models.ForeignKey(blank=True, null=True,
                                                    on_delete=django.db.models.deletion.SET_NULL,
                                                    related_name="+", to="trials.trial")),
            ],
            options={"ordering": ["host", "name"]},
        ),
        migrations.CreateModel(
            name="TrialLog",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("attempt", models.PositiveIntegerField()),
                ("worker", models.CharField(blank=True, max_length=200)),
                ("text", models.TextField(blank=True)),
                ("truncated", models.BooleanField(default=False)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("trial", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="logs",
                                            to="trials.trial")),
            ],
            options={
                "ordering": ["trial", "attempt"],
                "constraints": [models.UniqueConstraint(fields=("trial", "attempt"),
                                                        name="workers_triallog_one_per_attempt")],
            },
        ),
    ]
