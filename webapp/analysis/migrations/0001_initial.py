import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("searches", "0005_forks"),
    ]

    operations = [
        migrations.CreateModel(
            name="ControllerUpdate",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("update", models.PositiveIntegerField()),
                ("trials_told", models.PositiveIntegerField()),
                ("entropy", models.FloatField()),
                ("loss", models.FloatField()),
                ("baseline", models.FloatField()),
                ("mean_advantage", models.FloatField()),
                ("search", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                             related_name="controller_updates", to="searches.search")),
            ],
            options={
                "ordering": ["search", "update"],
                "constraints": [models.UniqueConstraint(fields=("search", "update"), name="unique_controller_update")],
            },
        ),
    ]
